"""Every setting, in every package, is read through pydantic-settings (api/settings.py,
worker/settings.py, ltd/settings.py): no module reads the environment by hand, and each settings
class reads its variables, treats an empty one as unset, and fails fast naming a bad one."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import Settings
from ltd.settings import CliSettings, api_key, get_cli_settings
from planner.errors import PlanInputError
from worker.settings import WorkerSettings, get_worker_settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("planner", "wire", "present", "client", "api", "worker", "ltd")
# Modules that may touch os.environ, and why: neither reads a setting of ours.
ENVIRON_ALLOWED = {
    "worker/distributed.py": "torchrun's RANK, LOCAL_RANK and WORLD_SIZE, torchrun's to set",
    "ltd/serve.py": "the environment handed on to the local worker process, token added",
}
VARIABLES = ("LTD_API_URL", "LTD_API_KEY", "LTD_WORKER_TOKEN", "LTD_WORKER_DATA_DIR")


def environ_reads(path: Path) -> list[int]:
    """Lines of `path` that use os.environ or os.getenv."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_no_module_reads_the_environment_by_hand() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ENVIRON_ALLOWED
        for line in environ_reads(path)
    }
    assert found == set()
    assert all(environ_reads(ROOT / path) for path in ENVIRON_ALLOWED)  # the scan sees them


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get_cli_settings.cache_clear()
    get_worker_settings.cache_clear()
    yield
    get_cli_settings.cache_clear()
    get_worker_settings.cache_clear()


def test_defaults() -> None:
    cli, worker = CliSettings(), WorkerSettings()
    assert cli.api_url == worker.api_url == "http://127.0.0.1:8000"
    assert cli.api_key is None and api_key() is None
    assert worker.worker_token is None and worker.worker_data_dir is None


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LTD_API_URL", "https://ltd.example.com/")
    monkeypatch.setenv("LTD_API_KEY", "k-123")
    monkeypatch.setenv("LTD_WORKER_TOKEN", "s3cr3t-xyz")
    monkeypatch.setenv("LTD_WORKER_DATA_DIR", str(tmp_path))
    cli, worker = get_cli_settings(), get_worker_settings()
    assert cli.api_url == worker.api_url == "https://ltd.example.com"  # no trailing slash
    assert api_key() == "k-123" and "k-123" not in repr(cli)
    assert worker.worker_token is not None
    assert worker.worker_token.get_secret_value() == "s3cr3t-xyz"
    assert "s3cr3t-xyz" not in repr(worker)
    assert worker.worker_data_dir == tmp_path


def test_empty_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LTD_API_KEY", "LTD_WORKER_TOKEN", "LTD_WORKER_DATA_DIR"):
        monkeypatch.setenv(name, "")
    assert CliSettings().api_key is None
    worker = WorkerSettings()
    assert worker.worker_token is None and worker.worker_data_dir is None


@pytest.mark.parametrize(
    ("variable", "value", "getter"),
    [
        ("LTD_API_URL", "localhost:8000", get_cli_settings),
        ("LTD_API_URL", "ftp://host", get_worker_settings),
        ("LTD_WORKER_DATA_DIR", "/nonexistent/ltd-data", get_worker_settings),
    ],
)
def test_a_bad_value_fails_fast_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, getter: Callable[[], object]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(PlanInputError) as caught:
        getter()
    assert caught.value.field == variable and value in caught.value.message
    cls = CliSettings if getter is get_cli_settings else WorkerSettings
    with pytest.raises(ValidationError):
        cls()


def test_the_getters_are_cached() -> None:
    assert get_cli_settings() is get_cli_settings()
    assert get_worker_settings() is get_worker_settings()


def test_the_readme_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(LTD_[A-Z_]+)` \|", section, re.MULTILINE)
    declared = {
        f"LTD_{name.upper()}"
        for cls in (Settings, WorkerSettings, CliSettings)
        for name in cls.model_fields
    }
    assert sorted(listed) == sorted(declared)
