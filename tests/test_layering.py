"""DESIGN.md's layering, over the whole import graph, counting every import (also those inside
functions and under TYPE_CHECKING), and every module a package runs as a program
(`[sys.executable, "-m", "ltd", ...]` is an edge to `ltd`, as an import would be):

    ltd (the CLI: the top floor, the only package that imports everything)
      api      worker         side by side, never each other, never the CLI
      present  client         presentation of a plan; the typed HTTP client of the API
      wire                    the wire contract: request, response and worker-protocol models
      planner                 the ground floor: pure numbers (numpy + pydantic)

and no import cycles between modules, at module level or inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("planner", "wire", "present", "client", "api", "worker", "ltd")

# First-party packages each package may import (besides itself).
ALLOWED = {
    "planner": set(),
    "wire": {"planner"},
    "present": {"planner"},
    "client": {"planner", "wire"},
    "api": {"planner", "present", "wire"},
    "worker": {"planner", "client", "wire"},
    "ltd": {"planner", "wire", "present", "client", "api", "worker"},
}
# Third-party packages each may import; None: any but FORBIDDEN's.
THIRD_PARTY: dict[str, set[str] | None] = {
    "planner": {"numpy", "pydantic"},
    "wire": {"pydantic"},
    "present": {"numpy", "pydantic", "rich", "jinja2", "matplotlib"},
    "client": {"httpx", "tenacity", "pydantic"},
    "api": None,
    "worker": None,
    "ltd": None,
}
FORBIDDEN = {
    "api": {"torch", "matplotlib"},  # matplotlib comes through present.figures, when drawn
    "worker": {"sqlalchemy", "alembic", "fastapi", "starlette", "psycopg", "matplotlib"},
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_as_program(node: ast.List | ast.Tuple) -> str | None:
    """The module a command line runs (`"-m", "pkg.mod"` among a list's constants), if any."""
    words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
    for flag, module in zip(words, words[1:], strict=False):
        if flag == "-m" and isinstance(module, str):
            return module
    return None


def imports_of(path: Path, root: Path, first_party: set[str]) -> set[str]:
    """Every module `path` imports, anywhere in the file, or runs with `-m`; relative imports
    resolved, and `from pkg import name` resolved to the submodule `pkg.name` when there is
    one."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.List | ast.Tuple) and (program := _run_as_program(node)):
            found.add(program)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in first_party else base)
    return found


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    return {module_name(f, root): f for pkg in packages for f in sorted((root / pkg).rglob("*.py"))}


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    names = set(modules)
    return {m: imports_of(p, root, names) for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself),
    among the project's modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, set[str]], packages: Iterable[str]) -> list[str]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    out = []
    for module, imported in sorted(graph.items()):
        pkg = module.split(".")[0]
        for name in sorted(imported):
            top = name.split(".")[0]
            if top == pkg or top in stdlib:
                continue
            if top in packages:
                if top not in ALLOWED[pkg]:
                    out.append(f"{module} imports {name} ({pkg} may import {sorted(ALLOWED[pkg])})")
                continue
            allowed = THIRD_PARTY[pkg]
            if top in FORBIDDEN.get(pkg, set()) or (allowed is not None and top not in allowed):
                out.append(f"{module} imports third-party {top}")
    return out


def test_every_package_keeps_its_floor() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert len(graph) > 50, "the scan found too few modules"
    assert violations(graph, PACKAGES) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(ROOT, PACKAGES)) == []


def test_the_checks_catch_a_violation_inside_a_function_and_a_cycle(tmp_path: Path) -> None:
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "planner" / "a.py").write_text(
        "def f():\n    import torch\n    from api import x\n"
    )
    (tmp_path / "api" / "x.py").write_text("def g():\n    from ltd import cli\n")
    (tmp_path / "api" / "spawn.py").write_text(
        "import subprocess, sys\n"
        "def w(url):\n    subprocess.Popen([sys.executable, '-m', 'ltd', 'worker', url])\n"
    )
    (tmp_path / "worker" / "b.py").write_text("from . import c\n")
    (tmp_path / "worker" / "c.py").write_text("def h():\n    from worker.b import y\n")
    graph = import_graph(tmp_path, PACKAGES)
    found = violations(graph, PACKAGES)
    assert any("planner.a imports third-party torch" in v for v in found)
    assert any(v.startswith("planner.a imports api.x") for v in found)
    assert any(v.startswith("api.x imports ltd ") for v in found)
    assert any(v.startswith("api.spawn imports ltd ") for v in found)  # runs it: an edge too
    assert cycles(graph) == [["worker.b", "worker.c"]]


def _loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (
        f"import sys\n{statement}\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [m for m in done.stdout.strip().split(",") if m]


def test_api_loads_no_matplotlib_torch_worker_or_cli() -> None:
    loaded = _loaded_after(
        "import api.main, api.server, api.db, api.queue",
        ("matplotlib", "torch", "worker", "ltd"),
    )
    assert loaded == []


def test_planner_loads_nothing_but_numpy_and_pydantic() -> None:
    loaded = _loaded_after(
        "import planner, planner.validation, planner.sizing, planner.inverse",
        ("httpx", "fastapi", "sqlalchemy", "torch", "matplotlib", "rich", "jinja2", "present"),
    )
    assert loaded == []


WEB = ("fastapi", "starlette", "httpx", "sqlalchemy", "torch")


def test_wire_imports_no_fastapi_nor_starlette() -> None:
    """The contract that the worker and the CLI share with the API never pulls in the API's
    web framework: neither in any wire module's imports, nor once `wire` is loaded."""
    graph = import_graph(ROOT, PACKAGES)
    wire_modules = {m: imported for m, imported in graph.items() if m.split(".")[0] == "wire"}
    assert {"wire.jobs", "wire.worker", "wire.plans", "wire.profiles"} <= set(wire_modules)
    imported_tops = {name.split(".")[0] for names in wire_modules.values() for name in names}
    assert imported_tops.isdisjoint(WEB), imported_tops & set(WEB)
    statement = "import wire, wire.jobs, wire.limits, wire.plans, wire.profiles, wire.worker"
    assert _loaded_after(statement, WEB) == []
    assert _loaded_after(statement, ("wire",)) != []  # the probe sees what it loads


def test_the_cli_loads_neither_fastapi_nor_torch_nor_matplotlib_to_plan() -> None:
    loaded = _loaded_after("import ltd.cli", ("fastapi", "torch", "matplotlib", "sqlalchemy"))
    assert loaded == []


@pytest.mark.parametrize(
    "statement", ["import present.report", "import present.plan_text", "import present.job_text"]
)
def test_matplotlib_loads_only_when_a_figure_is_drawn(statement: str) -> None:
    assert _loaded_after(statement, ("matplotlib",)) == []
