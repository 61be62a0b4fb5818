"""The quick tier: a test that starts a process or a server outside `integration` fails, naming the marker."""

from __future__ import annotations

import pytest

from runtime.settings import PROJECT_ROOT

pytest_plugins = ["pytester"]

CONFTEST = PROJECT_ROOT / "tests" / "conftest.py"


def run_inner(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Run `source` as a test module under this suite's conftest, in this process."""
    pytester.syspathinsert(PROJECT_ROOT)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "markers =\n    integration: starts a process or server\n"
    )
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_inprocess("-p", "no:xdist", "-p", "no:randomly", "-q", *args)


def test_a_test_that_starts_a_process_outside_the_tier_fails_naming_the_marker(pytester: pytest.Pytester) -> None:
    result = run_inner(
        pytester,
        "import subprocess\n\ndef test_spawns():\n    subprocess.run(['true'], check=True)\n",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*starts a process*not marked integration*pytestmark*"])


def test_a_test_that_opens_a_server_outside_the_tier_fails(pytester: pytest.Pytester) -> None:
    result = run_inner(
        pytester,
        "import socket\n\ndef test_listens():\n"
        "    with socket.socket() as s:\n        s.bind(('127.0.0.1', 0))\n        s.listen()\n",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*starts a server (a listening socket)*"])


@pytest.mark.integration  # the inner test starts a process
def test_a_marked_module_may_start_one_and_the_quick_tier_leaves_it_out(pytester: pytest.Pytester) -> None:
    source = (
        "import subprocess\n\nimport pytest\n\npytestmark = pytest.mark.integration\n\n"
        "def test_spawns():\n    subprocess.run(['true'], check=True)\n"
    )
    run_inner(pytester, source).assert_outcomes(passed=1)
    quick = pytester.runpytest_inprocess("-p", "no:xdist", "-q", "-m", "not integration")
    quick.assert_outcomes(deselected=1)


def test_a_test_that_uses_a_process_fixture_is_marked_integration(pytester: pytest.Pytester) -> None:
    # Collected only: the `client` fixture would start the dev server.
    result = run_inner(pytester, "def test_uses(client):\n    pass\n", "-m", "not integration", "--co")
    result.stdout.fnmatch_lines(["*1 deselected*"])
