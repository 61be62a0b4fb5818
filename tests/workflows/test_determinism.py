"""The determinism boundary: every module that runs inside a workflow is under the banned-API lint.

The modules are found, not listed: a fresh interpreter imports the two workflow modules and
reports which of Airlock's modules came with them. Each must be one where ruff refuses a clock
read; the sandbox then checks the same modules at run time whenever a test replays a history.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.settings import PROJECT_ROOT

RUFF = Path(sys.executable).parent / "ruff"
BANNED = {
    "clock": "import datetime\n_now = datetime.datetime.now()\n",
    "environment": "import os\n_home = os.environ.get('HOME')\n",
    "randomness": "import random\n_pick = random.random()\n",
}


def workflow_side_modules() -> list[str]:
    """Airlock modules a worker loads for its workflows, as files relative to the project."""
    code = (
        "import json, sys\n"
        "import workflows.agent_workflow, workflows.pipeline_workflow\n"
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
        " if n.startswith('workflows.') and m.__file__)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return sorted(str(Path(path).relative_to(PROJECT_ROOT)) for path in json.loads(out))


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


MODULES = workflow_side_modules()


def test_the_workflows_import_only_their_pure_modules() -> None:
    # Loaders and I/O (pipeline files, TOML, settings, activities) stay outside the workflows.
    assert "workflows/agent_workflow.py" in MODULES and "workflows/gate.py" in MODULES
    for outside in (
        "workflows/pipelines.py",
        "workflows/tomlfiles.py",
        "workflows/activities.py",
        "workflows/settings.py",
        "workflows/approvers.py",
    ):
        assert outside not in MODULES


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("kind", sorted(BANNED))
def test_a_banned_call_in_a_workflow_side_module_is_refused(module: str, kind: str) -> None:
    source = (PROJECT_ROOT / module).read_text()
    assert not [f for f in lint(module, source) if f["code"] == "TID251"], "the module is clean as it is"
    found = [f for f in lint(module, source + "\n" + BANNED[kind]) if f["code"] == "TID251"]
    assert found, f"ruff let a {kind} read through in {module}: add it to the TID251 scope in pyproject.toml"
