"""Database tables: stored plans and validation jobs.

Timestamps are stored as naive UTC (`UTCDateTime` adds the zone back on load), so SQLite and
PostgreSQL hold the same values. JSON documents are stored as text, exactly as served.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wire.jobs import JobState
from wire.limits import ID_CHARS, LEASE_ID_CHARS, OWNER_CHARS, WORKER_ID_CHARS

__all__ = ["Base", "DeviceProfileRow", "JobRow", "JobState", "PlanRow", "UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class PlanRow(Base):
    """A plan, keyed by the hash of its normalised request (`planner.resolve(...).plan_id`)."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    request_json: Mapped[str] = mapped_column(Text, doc="The request as the client sent it.")
    plan_json: Mapped[str] = mapped_column(Text, doc="The plan document, with `calibrated`.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class JobRow(Base):
    """A validation job of a plan; the lease columns belong to the worker holding it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    owner: Mapped[str | None] = mapped_column(
        String(OWNER_CHARS),
        doc="The owner of the key that submitted it (api.settings.ApiKey); None: submitted "
        "while the service had no keys.",
    )
    state: Mapped[str] = mapped_column(String(16), doc="A JobState value.")
    settings_json: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="Claims counted so far.")
    max_attempts: Mapped[int] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Float, default=0.0, doc="Fraction done, 0..1.")
    progress_message: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(WORKER_ID_CHARS))
    lease_id: Mapped[str | None] = mapped_column(String(LEASE_ID_CHARS))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeviceProfileRow(Base):
    """A measured device profile, keyed by a hash of its content
    (`planner.device.DeviceProfile.id`): never changed once stored, so an id always means the
    same numbers; a new measurement is a new row. Rows stored before revision 0003 keep the id
    they had (a hash of device name, dtype and torch version) and the numbers last stored under
    it."""

    __tablename__ = "device_profiles"
    __table_args__ = (Index("ix_device_profiles_latest", "device_name", "dtype", "updated_at"),)

    id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    device_name: Mapped[str] = mapped_column(String(200))
    dtype: Mapped[str] = mapped_column(String(16))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    profile_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
