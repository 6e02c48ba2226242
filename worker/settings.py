"""The worker's settings, read once from the environment (prefix `LTD_`) through
pydantic-settings; `get_worker_settings()` is the cached getter (tests: `cache_clear()`, or pass
the values to `run_worker` directly).

LTD_API_URL          where the worker finds the API (`ltd worker --api` overrides it)
LTD_WORKER_TOKEN     the API's worker token (`ltd worker --token` overrides it)
LTD_WORKER_DATA_DIR  the directory a job's `dataset` names a file in; unset: only `stdlib`
LTD_PROFILE_CACHE_DIR  where this device's measured profile is kept (one file per device, dtype
                     and torch version); default ~/.cache/ltd-planner/profiles

torchrun's RANK, LOCAL_RANK and WORLD_SIZE are torchrun's to set and `worker.distributed`'s to
read; they are not settings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from client.base import DEFAULT_API_URL, http_url
from planner.errors import PlanInputError, input_error_from


class WorkerSettings(BaseSettings):
    """Everything a worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LTD_", frozen=True, extra="ignore")

    api_url: str = Field(DEFAULT_API_URL, description="The API's URL (http or https).")
    worker_token: SecretStr | None = Field(
        None, description="The API's worker token; unset: `ltd worker` asks for --token."
    )
    worker_data_dir: Path | None = Field(
        None,
        description="An existing directory whose files jobs may name as their dataset; unset: "
        "jobs may use only the built-in `stdlib` corpus.",
    )

    profile_cache_dir: Path = Field(
        Path.home() / ".cache" / "ltd-planner" / "profiles",
        description="Where this device's measured profile is kept for the step-time model (one "
        "file per device, dtype and torch version): measured by the first job, read by the next.",
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("worker_token", "worker_data_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("worker_data_dir")
    @classmethod
    def _a_directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"not a directory: {str(value)!r}")
        return value


@lru_cache
def get_worker_settings() -> WorkerSettings:
    """The process's worker settings, read once; a bad value fails here, naming its variable
    (`PlanInputError("LTD_WORKER_DATA_DIR", ...)`)."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        bad = input_error_from(exc)
        raise PlanInputError(f"LTD_{bad.field.split('.')[0].upper()}", bad.message) from None
