"""Service settings, read once from the environment (prefix `LTD_`) through pydantic-settings.

LTD_DATABASE_URL     SQLAlchemy URL; default a SQLite file `./ltd.db`
                     (PostgreSQL: postgresql+psycopg://user@host:5432/db)
LTD_WORKER_TOKEN     bearer token the worker endpoints require; unset: they answer 503
LTD_API_KEYS         comma-separated `name:key` pairs (a bare key is its own owner); set: every
                     other /v1 endpoint needs one, and a key sees only its own jobs
LTD_ADMIN_KEYS       the same form, for keys that see and cancel every job
LTD_METRICS_KEY      set: /metrics needs `Authorization: Bearer <it>`
LTD_LEASE_SECONDS    how long a claim (or a heartbeat) holds a job, in seconds
LTD_MAX_ATTEMPTS     claims a job may use before it fails for good
LTD_READ_CACHE_SECONDS  how stale another replica's writes may look in a cached read (1 s)
LTD_THREADS          threads serving blocking routes, per process
LTD_WORKER_THREADS   threads serving the worker protocol, apart from those, per process
LTD_MIGRATE_ON_START run Alembic migrations when the app starts
LTD_MAX_BODY_BYTES   largest request body accepted (413 above it)
LTD_SQLITE_BUSY_TIMEOUT_MS  how long SQLite waits for the write lock
LTD_DATABASE_CONNECT_TIMEOUT_SECONDS  how long a PostgreSQL connection attempt may take

The worker's settings are `worker.settings.WorkerSettings`, the CLI's `ltd.settings.CliSettings`.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from planner.errors import PlanInputError, input_error_from
from wire.limits import OWNER_CHARS

_OWNER_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._@+-]{{0,{OWNER_CHARS - 1}}}")


class ApiKey(BaseModel):
    """One key of LTD_API_KEYS or LTD_ADMIN_KEYS, and the owner whose jobs it acts on."""

    model_config = ConfigDict(frozen=True)

    owner: str = Field(description="The name jobs submitted with this key are recorded under.")
    key: SecretStr


def bare_key_owner(key: str) -> str:
    """The owner of a key given without a name: its own, derived from a hash of the key (the
    key itself is never stored). The colon keeps it apart from every name a pair can give."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _api_key(item: str) -> ApiKey:
    """`name:key`, or a bare `key` (its own owner). The message never repeats the key."""
    name, colon, key = item.partition(":")
    if not colon:
        return ApiKey(owner=bare_key_owner(item), key=SecretStr(item))
    name, key = name.strip(), key.strip()
    if not key:
        raise ValueError(f"the pair of {name!r} has an empty key (name:key)")
    if not _OWNER_NAME.fullmatch(name):
        raise ValueError(
            f"an owner's name is 1-{OWNER_CHARS} letters, digits or . _ @ + - "
            "(starting with a letter or digit), before the key's colon"
        )
    return ApiKey(owner=name, key=SecretStr(key))


def _split_keys(value: object) -> object:
    """A comma-separated variable as a tuple of ApiKey (items: `name:key` or a bare key)."""
    if isinstance(value, str):
        return tuple(_api_key(item.strip()) for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    # hide_input_in_errors: a refused LTD_API_KEYS must not print the keys it holds.
    model_config = SettingsConfigDict(
        env_prefix="LTD_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field("sqlite:///./ltd.db", description="SQLAlchemy database URL.")
    worker_token: SecretStr | None = Field(
        None, description="Bearer token of the worker endpoints; unset disables them (503)."
    )
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field(
        (),
        description="Keys for the /v1 endpoints, comma-separated `name:key` pairs in "
        "LTD_API_KEYS (a bare key is its own owner); a key sees only its own jobs.",
    )
    admin_keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field(
        (),
        description="Keys that see and cancel every job (LTD_ADMIN_KEYS, the same form).",
    )
    metrics_key: SecretStr | None = Field(
        None, description="Set: /metrics needs `Authorization: Bearer <it>`; unset: open."
    )
    database_connect_timeout_seconds: float = Field(
        5.0,
        ge=1,
        le=600,
        description="How long a PostgreSQL connection attempt may take, seconds (libpq's "
        "connect_timeout; without it a lost server holds a route for minutes).",
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
    worker_threads: int = Field(
        4,
        ge=1,
        le=200,
        description="Threads serving the worker protocol (claims, heartbeats, reports) per "
        "process, apart from the routes' `threads`: plan traffic never starves a heartbeat.",
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
        "(its own writes of that row drop or replace it at once; up to twice this while one "
        "read refreshes it; 0: off). See api/cache.py.",
    )
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long SQLite waits for the write lock, milliseconds."
    )

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return _split_keys(value)

    @field_validator("worker_token", "metrics_key", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _each_key_once(self) -> Settings:
        """A key names one owner, as an API key or as an admin key, never both."""
        seen: set[str] = set()
        for variable, keys in (("api_keys", self.api_keys), ("admin_keys", self.admin_keys)):
            for key in keys:
                secret = key.key.get_secret_value()
                if secret in seen:
                    raise ValueError(
                        f"{variable}: a key is listed twice (in LTD_API_KEYS or LTD_ADMIN_KEYS)"
                    )
                seen.add(secret)
        return self

    @property
    def keyed(self) -> bool:
        """True when the /v1 endpoints need a key (LTD_API_KEYS or LTD_ADMIN_KEYS is set)."""
        return bool(self.api_keys or self.admin_keys)


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
