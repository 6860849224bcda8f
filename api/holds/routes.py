"""Holds (réservations), admissions, releases, refusals and exits.

Who may do what: the placement service of the request's competent authority holds, admits,
releases and records the exit; the establishment of the unit or the carer refuses. The
national role and the platform operator get 403 everywhere here.
"""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Principal, require
from api.deps import AuthorityFilter, IdempotencyHeader, Pool, idempotency
from api.holds import service
from api.holds.schemas import HoldIn, HoldOut, HoldPage
from api.requests.schemas import ExitIn, RefusalIn, ReleaseIn
from api.responses import written

router = APIRouter(prefix="/v1", tags=["orientation"])

DepartmentUser = Annotated[Principal, Depends(require("placement"))]
TargetUser = Annotated[Principal, Depends(require("holds.respond"))]
AnyButNational = Annotated[Principal, Depends(require("placement", "holds.respond"))]

Responses = dict[int | str, dict[str, Any]]

_404: Responses = {404: {"description": "Unknown hold."}}
_403: Responses = {403: {"description": "Not this request's authority (or not the target's side)."}}


def _conflict(what: str) -> dict[int | str, dict[str, Any]]:
    return {409: {"description": what + " Nothing was changed."}}


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldOut,
    summary="Hold places (one per child) on a unit or a foster carer",
    responses={
        **_403,
        **_conflict(
            "The request is not waiting, the target has not enough free places, or the "
            "carer is not active. Concurrent holds on the last place: exactly one wins."
        ),
        422: {"description": "Unknown request or target (`errors[].field` names it)."},
    },
)
async def create_hold(
    request: Request,
    body: HoldIn,
    principal: DepartmentUser,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """The held places stop counting as available at once (unit: available → reserved;
    carer: available_places decreases). Idempotency-Key is optional (recommended)."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.create(pool, principal, body, key)
    return written(answer, {"Location": f"/v1/holds/{answer.body['id']}"})


@router.get(
    "/holds",
    response_model=HoldPage,
    summary="Holds to act on: on my units / on me / of my authority's requests (audited)",
    responses={
        **_403,
        422: {
            "description": "Unknown `authority`, or a `department` of several authorities "
            "(`69`): `errors[0]` names the field and lists the `choices`."
        },
    },
)
async def list_holds(
    principal: AnyButNational,
    pool: Pool,
    authority: AuthorityFilter,
    status: Annotated[
        str, Query(pattern="^(held|admitted|released|refused|expired|exited)$")
    ] = "held",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> object:
    """Soonest deadline first, so an establishment answers the holds about to expire.
    `authority` filters on the requests' authority (a placement service: its own)."""
    return await service.list_holds(pool, principal, status, authority, limit)


@router.get(
    "/holds/{hold_id}",
    response_model=HoldOut,
    summary="One hold (audited read)",
    responses={**_403, **_404},
)
async def read_hold(hold_id: UUID, principal: AnyButNational, pool: Pool) -> object:
    return await service.read(pool, principal, hold_id)


@router.post(
    "/holds/{hold_id}/admit",
    response_model=HoldOut,
    summary="Record the admission: the places become occupied, the request placed",
    responses={
        **_403,
        **_404,
        **_conflict("Already admitted, released, refused or expired (also past its expiry)."),
    },
)
async def admit(hold_id: UUID, principal: DepartmentUser, pool: Pool) -> object:
    return await service.transition(
        pool, principal, hold_id, "admit", None, service.department_side
    )


@router.post(
    "/holds/{hold_id}/release",
    response_model=HoldOut,
    summary="Release a hold: the places are available again, the request waiting",
    responses={**_403, **_404, **_conflict("The hold is no longer held.")},
)
async def release(
    hold_id: UUID, principal: DepartmentUser, pool: Pool, body: ReleaseIn | None = None
) -> object:
    """`reason_code` optional (absent: `autre`); `agrement_suspendu` / `agrement_retire` are
    Places's own releases, not a client's."""
    outcome = (body or ReleaseIn()).outcome(required=False)
    return await service.transition(
        pool, principal, hold_id, "release", outcome, service.department_side
    )


@router.post(
    "/holds/{hold_id}/refuse",
    response_model=HoldOut,
    summary="Refuse an orientation (establishment or carer side), with a reason",
    responses={**_403, **_404, **_conflict("The hold is no longer held.")},
)
async def refuse(hold_id: UUID, body: RefusalIn, principal: TargetUser, pool: Pool) -> object:
    """`reason_code` required (`reason` alone, as before the codes: recorded as `autre`)."""
    return await service.transition(
        pool, principal, hold_id, "refuse", body.outcome(), service.target_side
    )


@router.post(
    "/placements/{placement_id}/exit",
    response_model=HoldOut,
    summary="Record a child's exit: the place is free again",
    responses={
        **_403,
        404: {"description": "Unknown placement (the id of the admitted hold)."},
        **_conflict("The request is not placed (the hold was never admitted, or already exited)."),
    },
)
async def exit_placement(
    placement_id: UUID, body: ExitIn, principal: DepartmentUser, pool: Pool
) -> object:
    """`placement_id` is the id of the admitted hold. `reason_code` required (`reason` alone,
    as before the codes: recorded as `autre`)."""
    return await service.transition(
        pool, principal, placement_id, "exit", body.outcome(), service.department_side
    )
