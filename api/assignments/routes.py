"""POST /v1/assignments/optimize."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.assignments import service
from api.assignments.schemas import OptimizeIn, OptimizeOut
from api.auth import Principal, require_department_scope, require_roles
from api.deps import AppSettings, Pool

router = APIRouter(prefix="/v1", tags=["assignments"])


@router.post(
    "/assignments/optimize",
    response_model=OptimizeOut,
    summary="Best assignment of the waiting list to the region's free places (proposes only)",
)
async def optimize(
    principal: Annotated[Principal, Depends(require_roles("department"))],
    pool: Pool,
    body: OptimizeIn,
    settings: AppSettings,
) -> object:
    """Maximises the total matching score of the department's waiting requests over the
    free places of its region (sibling groups indivisible, no place booked twice), and
    reports what first-come-first-served would achieve on the same data. No hold is
    written."""
    require_department_scope(principal, body.department)
    return await service.run(pool, principal, body, settings)
