"""Service settings, read once from the environment (prefix `LTD_`) through pydantic-settings.

LTD_DATABASE_URL     SQLAlchemy URL; default a SQLite file `./ltd.db`
                     (PostgreSQL: postgresql+psycopg://user@host:5432/db)
LTD_WORKER_TOKEN     bearer token the worker endpoints require; unset: they answer 503
LTD_API_KEYS         comma-separated keys; set: every other /v1 endpoint needs one
LTD_LEASE_SECONDS    how long a claim (or a heartbeat) holds a job, in seconds
LTD_MAX_ATTEMPTS     claims a job may use before it fails for good
LTD_READ_CACHE_SECONDS  how stale another replica's writes may look in a cached read (1 s)
LTD_THREADS          threads serving blocking routes, per process
LTD_MIGRATE_ON_START run Alembic migrations when the app starts
LTD_MAX_BODY_BYTES   largest request body accepted (413 above it)
LTD_SQLITE_BUSY_TIMEOUT_MS  how long SQLite waits for the write lock

The worker's settings are `worker.settings.WorkerSettings`, the CLI's `ltd.settings.CliSettings`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from planner.errors import PlanInputError, input_error_from


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LTD_", frozen=True, extra="ignore")

    database_url: str = Field("sqlite:///./ltd.db", description="SQLAlchemy database URL.")
    worker_token: SecretStr | None = Field(
        None, description="Bearer token of the worker endpoints; unset disables them (503)."
    )
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (), description="Keys for the /v1 endpoints (comma-separated in LTD_API_KEYS)."
    )
    lease_seconds: float = Field(60.0, gt=0, le=86_400, description="Lease length, seconds.")
    max_attempts: int = Field(3, ge=1, le=100, description="Claims per job before it fails.")
    threads: int = Field(
        8,
        ge=1,
        le=200,
        description="Threads serving blocking routes (database calls) per process. Few threads "
        "contend less for the GIL; queued requests wait in the event loop.",
    )
    migrate_on_start: bool = Field(True, description="Run Alembic migrations at start-up.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, le=2**30, description="Largest request body accepted (413 above)."
    )
    read_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="How long a replica may serve a plan or job it read from memory, seconds "
        "(its own writes drop it at once; 0: off). See api/cache.py.",
    )
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long SQLite waits for the write lock, milliseconds."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("worker_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests override this dependency (or pass their own
    Settings to `create_app`). A bad value fails here, naming its variable
    (`PlanInputError("LTD_LEASE_SECONDS", ...)`: `ltd serve` exits 2)."""
    try:
        return Settings()
    except ValidationError as exc:
        bad = input_error_from(exc)
        raise PlanInputError(f"LTD_{bad.field.split('.')[0].upper()}", bad.message) from None
