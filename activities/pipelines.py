"""Pipeline files: `agents/pipelines/*.toml` read and checked once, at worker start."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from mcp_servers.tomlfiles import ConfigError, read_toml, validate
from workflows.payloads import PipelineDefinition
from workflows.templates import problems


def load_pipelines(directory: Path, agents: Collection[str]) -> dict[str, PipelineDefinition]:
    """Load `directory/*.toml` (a missing directory means no pipelines); errors name file and key."""
    pipelines: dict[str, PipelineDefinition] = {}
    files: dict[str, Path] = {}
    if not directory.is_dir():
        return pipelines
    for path in sorted(directory.glob("*.toml")):
        data: dict[str, Any] = read_toml(path)
        data.setdefault("name", path.stem)
        definition = validate(PipelineDefinition, data, path=path)
        if definition.name in pipelines:
            raise ConfigError(f"{path}: key 'name': {definition.name!r} is also declared in {files[definition.name]}")
        found = problems(definition, agents)
        if found:
            raise ConfigError(f"{path}: " + "; ".join(f"key {key!r}: {message}" for key, message in found))
        pipelines[definition.name] = definition
        files[definition.name] = path
    return pipelines
