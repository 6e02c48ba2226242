"""Stored device profiles as clients see them (`POST|GET /v1/device-profiles`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from planner.device import DeviceProfile


class DeviceProfilePublic(BaseModel):
    """A stored device profile: use its `id` as a plan request's `hardware.device_profile`."""

    id: str
    profile: DeviceProfile
    created_at: datetime
    updated_at: datetime


class DeviceProfilesPublic(BaseModel):
    data: list[DeviceProfilePublic]
    count: int = Field(description="Profiles stored in all.")
