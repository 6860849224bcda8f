"""Declaring capacity: PUT /v1/units/{unit_id}/capacity and
PUT /v1/foster-carers/{carer_id}/availability."""

from uuid import UUID

from fastapi import APIRouter, Request, Response

from api.auth import AnyPrincipal
from api.capacity import service
from api.capacity.schemas import AvailabilityIn, CapacityIn, CapacitySnapshot
from api.deps import IdempotencyHeader, IfMatchHeader, Pool, idempotency, if_match_version
from api.registry.schemas import FosterCarerOut
from api.responses import written

router = APIRouter(prefix="/v1", tags=["capacity"])


@router.put(
    "/units/{unit_id}/capacity",
    response_model=CapacitySnapshot,
    summary="Declare a unit's capacity for one temporality",
    responses={
        403: {"description": "The unit belongs to another establishment."},
        404: {"description": "Unknown unit."},
        409: {"description": "Stale If-Match version."},
        422: {"description": "Counts break the invariants; `errors[].field` names the field."},
        428: {"description": "Idempotency-Key header missing."},
    },
)
async def declare_capacity(
    request: Request,
    unit_id: UUID,
    body: CapacityIn,
    principal: AnyPrincipal,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """Counts omitted from the body keep their last declared value. Replaying the same
    Idempotency-Key and body returns the first response and writes nothing."""
    key = idempotency(request, idempotency_key, required=True)
    assert key is not None
    answer = await service.declare_unit(
        pool, principal, unit_id, body, key, if_match_version(if_match)
    )
    return written(answer, {"ETag": f'"{answer.body["version"]}"'})


@router.put(
    "/foster-carers/{carer_id}/availability",
    response_model=FosterCarerOut,
    summary="Declare a foster carer's free places and status",
    responses={
        403: {"description": "Neither this carer nor their employing department."},
        404: {"description": "Unknown carer."},
        409: {"description": "Stale If-Match version."},
        422: {"description": "More places than the agrément, or bad dates."},
    },
)
async def declare_availability(
    request: Request,
    carer_id: UUID,
    body: AvailabilityIn,
    principal: AnyPrincipal,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """Idempotency-Key is optional here (recommended); the contract requires it only for units."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.declare_carer(
        pool, principal, carer_id, body, key, if_match_version(if_match)
    )
    return written(answer, {"ETag": f'"{answer.body["version"]}"'})
