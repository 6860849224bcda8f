"""POST /v1/search."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Principal, require
from api.deps import AppSettings, Pool
from api.reads import ReadPool
from api.search.schemas import SearchIn, SearchOut
from api.search.service import run_search

router = APIRouter(prefix="/v1", tags=["search"])


@router.post(
    "/search",
    response_model=SearchOut,
    summary="Search places for one child or a sibling group, with reasons and relaxations",
    responses={422: {"description": "Unknown commune, age out of 0–21, unknown code…"}},
)
async def search(
    principal: Annotated[Principal, Depends(require("placement"))],
    pool: Pool,
    read_pool: ReadPool,
    settings: AppSettings,
    body: SearchIn,
) -> object:
    """Proposals come in one total order (ladder step of the request's urgency, fresh before
    stale, for `immediate` emergency units and carers first, score, a stable tie-break), so
    the first k options for `limit=k` are the first k for any larger limit; each says which
    criteria it meets, what each contributed, and which relaxations it needed. A carer
    appears with their commune and a distance rounded to the kilometre, never their home.
    Each search is audited (`search.run`) before its answer leaves."""
    return await run_search(
        pool, principal, body, stale_after_days=settings.stale_after_days, read_pool=read_pool
    )
