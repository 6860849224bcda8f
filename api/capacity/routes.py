"""PUT /v1/units/{unit_id}/capacity."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header

from api.auth import AnyPrincipal
from api.capacity import service
from api.capacity.schemas import CapacityIn, CapacitySnapshot
from api.deps import Pool
from api.idempotency import check_key

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
    unit_id: UUID,
    body: CapacityIn,
    principal: AnyPrincipal,
    pool: Pool,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> object:
    """Counts omitted from the body keep their last declared value. Replaying the same
    Idempotency-Key and body returns the first response and writes nothing."""
    key = check_key(idempotency_key, required=True)
    assert key is not None
    return await service.declare(
        pool, principal, unit_id, body, key, service.parse_if_match(if_match)
    )
