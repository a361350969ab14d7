"""Which package may import which (docs/decisions/0002-where-sql-lives.md): the command line (``gridgov``) sits on
top of the service (``api``), which sits on the domain (``spatial``, ``tiles``). Read from the source, statically:
an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of ``package`` imports (absolute names), by file path relative to the root."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file}: {name}" for file, names in imported_modules(package).items() for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("package", ["api", "spatial", "tiles"])
def test_nothing_below_the_command_line_imports_it(package):
    assert imported_modules(package), f"no Python files found in {package}/"
    assert offenders(package, ("gridgov",)) == []


@pytest.mark.parametrize("package", ["spatial", "tiles"])
def test_the_domain_knows_no_web_framework(package):
    assert offenders(package, ("fastapi", "starlette", "api")) == []


def test_the_command_line_presents_through_presenters_not_routers():
    assert any("api.presenters.inspection" in names for names in imported_modules("gridgov").values())
    assert offenders("gridgov", ("api.routers",)) == []
