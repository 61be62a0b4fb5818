"""Loading a test project's agents and servers, and the error that names what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_servers.tomlfiles import ConfigError
from tests.support.project import make_project
from worker import build_activities


def load_error(root: Path, **project: Any) -> str:
    """Write a project under `root`, load it the way the worker does, return the ConfigError text."""
    config = make_project(root, **project)
    with pytest.raises(ConfigError) as failure:
        build_activities(config.settings, environ=config.environ)
    return str(failure.value)
