"""docs/architecture.md names every module of the five packages, so the map of the house stays true."""

from __future__ import annotations

import re

from runtime.settings import PROJECT_ROOT

PACKAGES = ("workflows", "activities", "runtime", "mcp_servers", "console")
DOC = (PROJECT_ROOT / "docs" / "architecture.md").read_text()


def modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if path.name == "__init__.py" and path.parent == PROJECT_ROOT / package:
                continue
            found.append(str(path.relative_to(PROJECT_ROOT)))
    return found


def test_the_architecture_page_names_every_module() -> None:
    missing = [module for module in modules() if f"| `{module}` |" not in DOC]
    assert len(modules()) > 80
    assert not missing, f"add a row saying what each owns to docs/architecture.md: {missing}"


def test_every_module_named_on_the_page_exists() -> None:
    named = re.findall(r"^\| `([^`]+)` \|", DOC, flags=re.M)
    assert named and all((PROJECT_ROOT / path).is_file() for path in named), named
