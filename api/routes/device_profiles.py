"""`/v1/device-profiles`: measured device profiles for the step-time model.

`ltd profile -o FILE` measures one; `POST` stores it (a job in mode "profile" stores its own).
A plan request names a stored one by id in `hardware.device_profile`. A profile's id is a hash
of its content, so a stored profile never changes: an id always means the same numbers, and a
new measurement of the same device gets a new id (`?device=...&dtype=...` finds the latest).
Profiles are served as stored (`api.documents`), whatever version stored them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from api import crud
from api.body import JsonBody
from api.deps import API_KEY_RESPONSES, ClockDep, DbDep, require_api_key
from api.documents import device_profile_json, device_profiles_json
from api.errors import NotFoundError
from api.routes import Id, json_text
from planner.device import DeviceProfile, Dtype
from wire.limits import MAX_OFFSET, PAGE_SIZE
from wire.profiles import DeviceProfilePublic, DeviceProfilesPublic

BODY = JsonBody(DeviceProfile)
NO_NUL = r"^[^\x00]+$"  # a NUL byte matches no stored name (PostgreSQL text cannot hold one)


def _each_filter_once(request: Request) -> None:
    """A filter given twice is refused (422), not read as its last value."""
    for name in ("device", "dtype"):
        if len(request.query_params.getlist(name)) > 1:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("query", name), "msg": "give it once",
                  "input": None}]
            )  # fmt: skip


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
    profile: Annotated[DeviceProfile, Depends(BODY)], db: DbDep, clock: ClockDep
) -> Response:
    """Store a profile under its id, a hash of its content: 201, the stored profile with its
    `id` (the same profile again: the same id, stored once). A stored profile never changes."""
    with db.write() as session:
        row = crud.store_device_profile(session, profile=profile, now=clock())
        document = device_profile_json(row)
    return json_text(document, 201, {"Location": f"/v1/device-profiles/{row.id}"})


@router.get("", response_model=DeviceProfilesPublic, dependencies=[Depends(_each_filter_once)])
def list_device_profiles(
    db: DbDep,
    device: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="Only profiles of this device name (`device_name`).",
        ),
    ] = None,
    dtype: Annotated[Dtype | None, Query(description="Only profiles in this dtype.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE, description="Profiles per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Profiles to skip.")] = 0,
) -> Response:
    """Stored profiles, the most recently measured first: with `device` and `dtype`, the first
    is the latest measurement of that device (`?device=cpu&dtype=float32&limit=1`)."""
    with db.read() as session:
        rows, count = crud.list_device_profiles(
            session, limit=limit, offset=offset, device_name=device, dtype=dtype
        )
        return json_text(device_profiles_json(rows, count))


@router.get(
    "/{profile_id}",
    response_model=DeviceProfilePublic,
    responses={404: {"description": "Unknown id"}},
)
def get_device_profile(profile_id: Id, db: DbDep) -> Response:
    with db.read() as session:
        row = crud.get_device_profile(session, profile_id=profile_id)
        if row is None:
            raise NotFoundError("device profile", profile_id)
        return json_text(device_profile_json(row))
