"""The determinism boundary is a folder: `workflows/` runs inside a workflow and imports nothing else of Airlock's.

Two rules, each asserted on the tree as it is and shown to fail on a planted breach:
- every module in `workflows/` imports no Airlock package outside `workflows/` (so whatever a
  workflow loads is in the folder), and `mcp_servers/` imports none of the worker side or Temporal;
- ruff refuses a clock, environment or randomness read anywhere in the folder (TID251, scoped
  to `workflows/**` in pyproject.toml); the sandbox checks the same code at run time on replay.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration  # runs ruff as a process, once per module and kind

RUFF = Path(sys.executable).parent / "ruff"
BANNED = {
    "clock": "import datetime\n_now = datetime.datetime.now()\n",
    "environment": "import os\n_home = os.environ.get('HOME')\n",
    "randomness": "import random\n_pick = random.random()\n",
}
# Airlock's own top-level packages and modules; anything else imported is third party or stdlib.
AIRLOCK = {"workflows", "activities", "runtime", "mcp_servers", "console", "worker", "bench", "tests"}
# What each folder may import of Airlock's (DESIGN: worker.py, console → worker side → workflows, mcp_servers).
ALLOWED = {
    "workflows": {"workflows"},
    "mcp_servers": {"mcp_servers"},
}
# The MCP side knows nothing of Temporal.
FOREIGN = {"mcp_servers": {"temporalio"}}


def modules(folder: str) -> list[str]:
    return sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / folder).rglob("*.py"))


def imported_roots(source: str) -> set[str]:
    """Top-level names of every module `source` imports, wherever the import statement sits."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def breaches(folder: str, source: str) -> set[str]:
    """What `source`, as a module of `folder`, imports that the layout forbids."""
    roots = imported_roots(source)
    return ((roots & AIRLOCK) - ALLOWED[folder]) | (roots & FOREIGN.get(folder, set()))


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_a_folder_imports_only_what_the_layout_allows(folder: str) -> None:
    found = {path: sorted(b) for path in modules(folder) if (b := breaches(folder, (PROJECT_ROOT / path).read_text()))}
    assert not found, f"imports across the boundary: {found}"


@pytest.mark.parametrize(
    ("folder", "planted"),
    [
        ("workflows", "from activities.policy import evaluate\n"),
        ("workflows", "def f():\n    import runtime.settings\n"),
        ("workflows", "from mcp_servers.tomlfiles import ConfigError\n"),
        ("mcp_servers", "from workflows import schemas\n"),
        ("mcp_servers", "from temporalio import workflow\n"),
    ],
)
def test_a_planted_import_across_the_boundary_is_found(folder: str, planted: str) -> None:
    source = (PROJECT_ROOT / modules(folder)[0]).read_text()
    assert not breaches(folder, source)
    assert breaches(folder, source + "\n" + planted)


def test_a_worker_loads_for_its_workflows_only_modules_of_the_folder() -> None:
    # At run time too: importing the workflow classes brings no other Airlock module with it.
    code = (
        "import json, sys\n"
        "import workflows.agent_workflow, workflows.pipeline_workflow\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {sorted(AIRLOCK)!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "workflows.gate" in loaded
    assert all(name == "workflows" or name.startswith("workflows.") for name in loaded), loaded


def lint(path: str, source: str) -> list[dict[str, object]]:
    """Ruff's findings for `source` as if it were the file at `path`, with the project's settings."""
    ran = subprocess.run(
        [str(RUFF), "check", "--output-format", "json", "--stdin-filename", path, "-"],
        input=source,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [finding for finding in json.loads(ran.stdout) if isinstance(finding, dict)]


@pytest.mark.parametrize("module", modules("workflows"))
@pytest.mark.parametrize("kind", sorted(BANNED))
def test_a_banned_call_anywhere_in_the_folder_is_refused(module: str, kind: str) -> None:
    source = (PROJECT_ROOT / module).read_text()
    assert not [f for f in lint(module, source) if f["code"] == "TID251"], "the module is clean as it is"
    found = [f for f in lint(module, source + "\n" + BANNED[kind]) if f["code"] == "TID251"]
    assert found, f"ruff let a {kind} read through in {module}: the TID251 scope in pyproject.toml is the folder"


def test_code_outside_the_folder_may_read_the_clock() -> None:
    # The scope is the folder, not the whole tree: the worker side reads the clock and environment.
    assert not [f for f in lint("runtime/settings.py", BANNED["clock"]) if f["code"] == "TID251"]
