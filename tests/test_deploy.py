"""docker-compose.yml and its images, checked by parsing (no Docker engine on CI)."""

import re
from pathlib import Path

import yaml

from ltd.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def ltd_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_service_command_is_a_real_entry_point() -> None:
    commands = ltd_commands()
    for name in ("api", "worker"):
        cmd = COMPOSE["services"][name]["command"]
        assert cmd[0] == "ltd" and cmd[1] in commands, (name, cmd)
        # and the flags parse with the real parser
        build_parser().parse_args(cmd[1:])
    for name in ("api", "worker"):
        build = COMPOSE["services"][name]["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        text = dockerfile.read_text()
        assert re.search(r'^CMD \["ltd", "(serve|worker)"', text, re.M), dockerfile
        for package in (
            "planner",
            "wire",
            "present",
            "client",
            "api",
            "worker",
            "ltd",
        ):  # all it imports
            assert f"COPY {package} {package}" in text


def test_api_waits_on_a_healthy_postgres() -> None:
    services = COMPOSE["services"]
    assert "healthcheck" in services["postgres"]
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["LTD_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_worker_reserves_an_nvidia_gpu() -> None:
    devices = COMPOSE["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_secrets_are_required_not_defaulted() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "LTD_WORKER_TOKEN", "LTD_API_KEYS"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses and all(u.startswith(":?") for u in uses), (secret, uses)


def test_the_api_listens_beyond_loopback_only_with_its_keys() -> None:
    """`ltd serve --host 0.0.0.0` refuses to start without keys: compose requires them, and
    never opens the service with --insecure-open."""
    api = COMPOSE["services"]["api"]
    args = build_parser().parse_args(api["command"][1:])
    assert args.host == "0.0.0.0" and not args.insecure_open
    assert api["environment"]["LTD_API_KEYS"].startswith("${LTD_API_KEYS:?")
