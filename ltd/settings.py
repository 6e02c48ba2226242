"""The CLI's settings, read once from the environment (prefix `LTD_`) through pydantic-settings;
`get_cli_settings()` is the cached getter (tests: `cache_clear()` after changing the
environment). A flag given on the command line wins over its variable.

LTD_API_URL   where `ltd submit` finds the server (`--server` overrides it)
LTD_API_KEY   the key `ltd submit` and `ltd check --server` send (one of the server's LTD_API_KEYS)

The service's settings are `api.settings.Settings` (`ltd serve`, `ltd migrate`), the worker's
`worker.settings.WorkerSettings` (`ltd worker`).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from client.base import DEFAULT_API_URL, http_url
from planner.errors import PlanInputError, input_error_from


class CliSettings(BaseSettings):
    """Everything the CLI itself reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LTD_", frozen=True, extra="ignore")

    api_url: str = Field(DEFAULT_API_URL, description="The server's URL (http or https).")
    api_key: SecretStr | None = Field(
        None, description="The key sent to the server; unset: none (a server without keys)."
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache
def get_cli_settings() -> CliSettings:
    """The CLI's settings, read once; a bad value fails here, naming its variable
    (`PlanInputError("LTD_API_URL", ...)`: exit 2)."""
    try:
        return CliSettings()
    except ValidationError as exc:
        bad = input_error_from(exc)
        raise PlanInputError(f"LTD_{bad.field.split('.')[0].upper()}", bad.message) from None


def api_key() -> str | None:
    """The key the CLI sends to a server: LTD_API_KEY, when it is set."""
    key = get_cli_settings().api_key
    return key.get_secret_value() if key else None
