"""POST /v1/assignments/optimize."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.assignments import service
from api.assignments.schemas import OptimizeIn, OptimizeOut
from api.auth import Principal, require
from api.deps import AppSettings, Pool

router = APIRouter(prefix="/v1", tags=["assignments"])


@router.post(
    "/assignments/optimize",
    response_model=OptimizeOut,
    summary="Best assignment of the waiting list to the region's free places (proposes only)",
    responses={
        403: {"description": "Another authority's waiting list."},
        404: {"description": "None of the authority's departments is in the referential."},
        422: {
            "description": "Neither `authority` nor `department`, an unknown authority, a "
            "`department` of several authorities (`69`: `errors[0].choices`), or `request_ids` "
            "that are not this authority's waiting requests."
        },
    },
)
async def optimize(
    principal: Annotated[Principal, Depends(require("placement"))],
    pool: Pool,
    body: OptimizeIn,
    settings: AppSettings,
) -> object:
    """Maximises the total matching score of the authority's waiting requests over the
    free places of its region (the regions of its departments; sibling groups indivisible, no
    place booked twice), plus what each child placed earns for its days waited since the
    decision and its urgency (weights in the settings), and reports what
    first-come-first-served would achieve on the same data: children placed, days waited by
    those left unplaced, placed by urgency. No hold is written."""
    return await service.run(pool, principal, body, settings)
