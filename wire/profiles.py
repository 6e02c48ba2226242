"""Stored device profiles as clients see them (`POST|GET /v1/device-profiles`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from planner.device import DeviceProfile


class DeviceProfilePublic(BaseModel):
    """A stored device profile: use its `id` as a plan request's `hardware.device_profile`.
    The id is a hash of the profile's content, so it always names these numbers; a stored
    profile never changes. (A profile an earlier version stored is shown as it stored it.)"""

    id: str
    profile: DeviceProfile
    created_at: datetime
    updated_at: datetime = Field(
        description="When these numbers were stored (created_at, but for profiles stored "
        "before ids were content hashes, which a newer measurement of the device replaced)."
    )


class DeviceProfilesPublic(BaseModel):
    data: list[DeviceProfilePublic]
    count: int = Field(description="Profiles stored in all.")
