"""Declaring capacity: PUT /v1/units/{unit_id}/capacity,
PUT /v1/foster-carers/{carer_id}/availability (the carer's own part) and
PUT /v1/foster-carers/{carer_id}/openness (the employer's choice)."""

from uuid import UUID

from fastapi import APIRouter, Request, Response

from api.auth import AnyPrincipal
from api.capacity import service
from api.capacity.schemas import AvailabilityIn, CapacityIn, CapacitySnapshot, OpennessIn
from api.deps import IdempotencyHeader, IfMatchHeader, Pool, idempotency, if_match_version
from api.errors import PreconditionRequired
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
    summary="Declare a foster carer's own part: free places, leave, preferences",
    responses={
        403: {
            "description": "Neither this carer, their employer nor their agrément's issuer;"
            " or a carer asking for `suspended` (`errors[].field` = `status`)."
        },
        404: {"description": "Unknown carer."},
        409: {
            "description": "Stale If-Match version; or free places on an agrément not valid"
            " today (`agrement_state` in the problem)."
        },
        422: {
            "description": "More places than the agrément, bad dates, preferences outside"
            " the agrément (`preferences.age_min`…), `suspended` from anyone but the carer."
        },
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


@router.put(
    "/foster-carers/{carer_id}/openness",
    response_model=FosterCarerOut,
    summary="Open a foster carer to other authorities, or close them (their employer)",
    responses={
        403: {"description": "Not the carer's employer."},
        404: {"description": "Unknown carer."},
        409: {"description": "Stale If-Match version (the carer's part's `version`)."},
        428: {"description": "If-Match header missing."},
    },
)
async def set_openness(
    request: Request,
    carer_id: UUID,
    body: OpennessIn,
    principal: AnyPrincipal,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """The employer decides whether other authorities may propose and hold the carer.
    If-Match (the carer's ``version``) is required: the choice is made on what was read."""
    key = idempotency(request, idempotency_key, required=False)
    version = if_match_version(if_match)
    if version is None:
        raise PreconditionRequired(
            "If-Match : en-tête requis (la version de l'assistant familial).",
            errors=[{"field": "If-Match", "message": "required"}],
        )
    answer = await service.set_openness(pool, principal, carer_id, body, key, version)
    return written(answer, {"ETag": f'"{answer.body["version"]}"'})
