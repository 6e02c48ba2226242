"""Settings from the environment (prefix LTD_)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings, bare_key_owner, get_settings
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
    assert [(k.owner, k.key.get_secret_value()) for k in settings.api_keys] == [
        (bare_key_owner("a"), "a"),
        (bare_key_owner("b"), "b"),
    ]
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


def test_keys_are_name_key_pairs_or_bare_keys(monkeypatch):
    monkeypatch.setenv("LTD_API_KEYS", "alice:k-a1, alice:k-a2,ci-bot:k:with:colons , bare-key")
    monkeypatch.setenv("LTD_ADMIN_KEYS", "ops@example.com:k-ops")
    monkeypatch.setenv("LTD_METRICS_KEY", "k-metrics")
    monkeypatch.setenv("LTD_DATABASE_CONNECT_TIMEOUT_SECONDS", "3")
    settings = Settings()
    keys = [(k.owner, k.key.get_secret_value()) for k in settings.api_keys]
    # Two keys of one owner (a key being rotated), a key holding colons after its name, and a
    # bare key, its own owner under a name derived from it (the key itself is never stored).
    assert keys == [
        ("alice", "k-a1"),
        ("alice", "k-a2"),
        ("ci-bot", "k:with:colons"),
        (bare_key_owner("bare-key"), "bare-key"),
    ]
    assert bare_key_owner("bare-key").startswith("key:") and "bare-key" not in bare_key_owner(
        "bare-key"
    )
    assert [(k.owner, k.key.get_secret_value()) for k in settings.admin_keys] == [
        ("ops@example.com", "k-ops")
    ]
    assert settings.metrics_key is not None and settings.keyed
    assert settings.database_connect_timeout_seconds == 3
    assert "k-a1" not in repr(settings) and "k-metrics" not in repr(settings)


def test_unset_keys_leave_the_service_open(monkeypatch):
    for name in ("LTD_API_KEYS", "LTD_ADMIN_KEYS", "LTD_METRICS_KEY"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.api_keys == settings.admin_keys == () and settings.metrics_key is None
    assert not settings.keyed
    assert Settings(admin_keys="root:k").keyed  # admin keys alone close it too


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LTD_API_KEYS", "alice:", "empty key"),
        ("LTD_API_KEYS", "al ice:secret-1", "owner's name"),
        ("LTD_API_KEYS", "a:secret-1,b:secret-1", "listed twice"),
        ("LTD_ADMIN_KEYS", "root:secret-2", "listed twice"),
    ],
)
def test_bad_keys_fail_fast_naming_the_variable_not_the_key(monkeypatch, variable, value, says):
    monkeypatch.setenv("LTD_API_KEYS", "x:secret-2")
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(PlanInputError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert caught.value.field == variable and says in caught.value.message
    assert "secret" not in str(caught.value)
    with pytest.raises(ValidationError) as raw:
        Settings()
    assert "secret" not in str(raw.value)
