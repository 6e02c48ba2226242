"""`/v1/device-profiles`: measured device profiles for the step-time model.

`ltd profile -o FILE` measures one; `POST` stores it (a job in mode "profile" stores its own).
A plan request names a stored one by id in `hardware.device_profile`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api import crud, service
from api.body import JsonBody
from api.deps import API_KEY_RESPONSES, ClockDep, DbDep, require_api_key
from api.errors import NotFoundError
from api.routes import Id
from planner.device import DeviceProfile
from wire.limits import MAX_OFFSET, PAGE_SIZE
from wire.profiles import DeviceProfilePublic, DeviceProfilesPublic

BODY = JsonBody(DeviceProfile)

router = APIRouter(
    prefix="/v1/device-profiles",
    tags=["device profiles"],
    dependencies=[Depends(require_api_key)],
    responses=API_KEY_RESPONSES,
)


@router.post(
    "",
    status_code=201,
    response_model=DeviceProfilePublic,
    responses={422: {"description": "A field of the profile is invalid (named in loc)"}},
    openapi_extra=BODY.openapi,
)
def create_device_profile(
    profile: Annotated[DeviceProfile, Depends(BODY)],
    db: DbDep,
    clock: ClockDep,
    response: Response,
) -> DeviceProfilePublic:
    """Store a profile under its key (device name, dtype, torch version): 201, the stored
    profile with its `id`; a newer profile of the same key replaces the older."""
    with db.write() as session:
        public = service.device_profile_public(
            crud.upsert_device_profile(session, profile=profile, now=clock())
        )
    response.headers["Location"] = f"/v1/device-profiles/{public.id}"
    return public


@router.get("", response_model=DeviceProfilesPublic)
def list_device_profiles(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE, description="Profiles per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Profiles to skip.")] = 0,
) -> DeviceProfilesPublic:
    """Stored profiles, the most recently measured first."""
    with db.read() as session:
        rows, count = crud.list_device_profiles(session, limit=limit, offset=offset)
        return DeviceProfilesPublic(
            data=[service.device_profile_public(r) for r in rows], count=count
        )


@router.get(
    "/{profile_id}",
    response_model=DeviceProfilePublic,
    responses={404: {"description": "Unknown id"}},
)
def get_device_profile(profile_id: Id, db: DbDep) -> DeviceProfilePublic:
    with db.read() as session:
        row = crud.get_device_profile(session, profile_id=profile_id)
        if row is None:
            raise NotFoundError("device profile", profile_id)
        return service.device_profile_public(row)
