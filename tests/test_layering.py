"""DESIGN.md's layering: planner is pure; api never imports torch or worker; worker never api."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "planner": {"torch", "fastapi", "sqlalchemy", "alembic", "api", "worker", "ltd", "httpx"},
    "api": {"torch", "worker"},
    "worker": {"api", "sqlalchemy", "alembic", "fastapi"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):  # every import, also those inside functions
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {
        f"{f.relative_to(ROOT)} imports {bad}"
        for f in files
        for bad in imported_modules(f) & FORBIDDEN[package]
    }
    assert not offenders, sorted(offenders)


def test_layering_check_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from fastapi import FastAPI\n")
    assert {"torch", "fastapi"} <= imported_modules(bad)
