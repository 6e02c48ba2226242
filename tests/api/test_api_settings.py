"""Settings from the environment (prefix LTD_)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings, get_settings
from planner.errors import PlanInputError


def test_defaults(monkeypatch):
    for name in (
        "LTD_DATABASE_URL",
        "LTD_WORKER_TOKEN",
        "LTD_API_KEYS",
        "LTD_LEASE_SECONDS",
        "LTD_MAX_ATTEMPTS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///./ltd.db"
    assert settings.worker_token is None and settings.api_keys == ()
    assert (settings.lease_seconds, settings.max_attempts) == (60.0, 3)


def test_environment(monkeypatch):
    monkeypatch.setenv("LTD_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("LTD_WORKER_TOKEN", "s3cr3t-xyz")
    monkeypatch.setenv("LTD_API_KEYS", " a, b ,,")
    monkeypatch.setenv("LTD_LEASE_SECONDS", "12.5")
    monkeypatch.setenv("LTD_MAX_ATTEMPTS", "5")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.worker_token is not None
    assert settings.worker_token.get_secret_value() == "s3cr3t-xyz"
    assert [k.get_secret_value() for k in settings.api_keys] == ["a", "b"]
    assert (settings.lease_seconds, settings.max_attempts) == (12.5, 5)
    assert "s3cr3t-xyz" not in repr(settings)


def test_empty_token_is_unset_and_bad_values_fail_fast(monkeypatch):
    monkeypatch.setenv("LTD_WORKER_TOKEN", "")
    assert Settings().worker_token is None
    monkeypatch.setenv("LTD_LEASE_SECONDS", "-1")
    with pytest.raises(ValidationError, match="lease_seconds"):
        Settings()


def test_get_settings_is_cached():
    get_settings.cache_clear()
    assert get_settings() is get_settings()
    get_settings.cache_clear()


def test_get_settings_names_the_variable_of_a_bad_value(monkeypatch):
    monkeypatch.setenv("LTD_MAX_ATTEMPTS", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(PlanInputError) as caught:
            get_settings()
        assert caught.value.field == "LTD_MAX_ATTEMPTS"
    finally:
        get_settings.cache_clear()
