"""PUT /v1/foster-carers/{carer_id}/availability."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header

from api.auth import AnyPrincipal
from api.capacity.service import parse_if_match
from api.carers import service
from api.carers.schemas import AvailabilityIn
from api.deps import Pool
from api.idempotency import check_key
from api.registry.schemas import FosterCarerOut

router = APIRouter(prefix="/v1", tags=["capacity"])


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
    carer_id: UUID,
    body: AvailabilityIn,
    principal: AnyPrincipal,
    pool: Pool,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> object:
    """Idempotency-Key is optional here (recommended); the contract requires it only for units."""
    key = check_key(idempotency_key, required=False)
    return await service.declare(pool, principal, carer_id, body, key, parse_if_match(if_match))
