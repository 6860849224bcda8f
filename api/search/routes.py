"""POST /v1/search."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Principal, require
from api.deps import Pool
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
    body: SearchIn,
) -> object:
    """Proposals come ordered by (number of relaxations, score); each says which
    criteria it meets, what each contributed, and which relaxations it needed. A carer
    appears with their commune and a distance rounded to the kilometre, never their home.
    Each search is audited (`search.run`) before its answer leaves."""
    return await run_search(pool, principal, body)
