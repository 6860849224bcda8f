"""Agréments: registered and decided by the authority that issued them (its PMI agrément
service, its administrator); read by that authority, the carer, the employer. Children
placed with a carer whose agrément is no longer valid are listed "to review".

Every write answers the agrément (``AgrementOut``) with its version as ETag, requires
If-Match (428 without it, 409 when stale — registration excepted) and honours
Idempotency-Key."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api.agrements import service
from api.agrements.schemas import (
    AgrementIn,
    AgrementOut,
    AgrementPage,
    AgrementPatch,
    ReinstateIn,
    RenewalIn,
    SuspendIn,
    ToReviewPage,
    WithdrawIn,
)
from api.auth import Authenticated, Principal, require, scoped_authority
from api.changes import Written
from api.codes import AgrementReadState
from api.deps import (
    IdempotencyHeader,
    IfMatchHeader,
    Pool,
    idempotency,
    if_match_version,
)
from api.responses import written

router = APIRouter(prefix="/v1", tags=["agréments"])

Issuer = Annotated[Principal, Depends(require("agrement.manage"))]
Reader = Annotated[Principal, Depends(require("carers.read"))]

Responses = dict[int | str, dict[str, Any]]
_WRITE: Responses = {
    403: {
        "description": "Not the issuing authority's agrément service (another authority, the "
        "carer, the employer, the operator)."
    },
    404: {"description": "Unknown carer."},
    409: {"description": "Stale If-Match, or the decision is impossible in the current state."},
    422: {"description": "Bad input: `errors[0].field` names the field; nothing written."},
    428: {"description": "If-Match missing."},
}


def _answer(answer: Written) -> Response:
    """The agrément, its version as ETag (a replay: the stored answer, as every replay)."""
    return written(answer, {"ETag": f'"{answer.body["version"]}"'})


@router.post(
    "/agrements",
    status_code=201,
    response_model=AgrementOut,
    summary="Register a foster carer and their agrément (issuing authority)",
    responses={
        403: {
            "description": "The commune's authority is not the principal's, or no "
            "`agrement.manage`."
        },
        409: {"description": "Agrément number already registered."},
        422: {"description": "Bad input: `errors[0].field` names the field; nothing written."},
    },
)
async def register(
    request: Request,
    body: AgrementIn,
    principal: Issuer,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """The issuer is the competent authority of the home's commune. `valid_until` defaults
    to five years after `issued_on` (CASF L421-3); above three children a `derogation` is
    required (CASF L421-5). The home is stored (search places the carer at their commune's
    point) and never returned. The carer starts with no free place."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.register(pool, principal, body, key)
    response = _answer(answer)
    if not answer.replayed:
        response.headers["Location"] = f"/v1/agrements/{answer.body['carer_id']}"
    return response


@router.get(
    "/agrements",
    response_model=AgrementPage,
    summary="The agréments my authority issued, expiring first (audited)",
    responses={403: {"description": "Not an authority's principal."}},
)
async def list_agrements(
    principal: Reader,
    pool: Pool,
    state: Annotated[AgrementReadState | None, Query()] = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3660)] = None,
    derogation: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> object:
    """`state` as of today (`expired` derived from `valid_until`); `expiring_within_days`:
    valid until today + n days at most (and not yet expired); `derogation`: with or without
    one. Ordered by `valid_until`, then number."""
    authority = scoped_authority(principal, None)
    return await service.list_agrements(
        pool, principal, authority, state, expiring_within_days, derogation, limit, offset
    )


@router.get(
    "/agrements/{carer_id}",
    response_model=AgrementOut,
    summary="One agrément (issuer, the carer, the employer; audited)",
    responses={
        403: {"description": "Not the issuer, the carer nor the employer."},
        404: {"description": "Unknown carer."},
    },
)
async def read(carer_id: UUID, principal: Authenticated, pool: Pool) -> Response:
    out = await service.read(pool, principal, carer_id)
    return written(Written(out), {"ETag": f'"{out["version"]}"'})


@router.patch(
    "/agrements/{carer_id}",
    response_model=AgrementOut,
    summary="Edit the agrément: dates, capacity, derogation, ages, care modes",
    responses=_WRITE,
)
async def edit(
    request: Request,
    carer_id: UUID,
    body: AgrementPatch,
    principal: Issuer,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """When the agrément narrows, the carer's preferences and free places are clipped
    within it in the same write."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.edit(pool, principal, carer_id, body, key, if_match_version(if_match))
    return _answer(answer)


@router.post(
    "/agrements/{carer_id}/suspend",
    response_model=AgrementOut,
    summary="Suspend the agrément (CASF L421-6: four months at most, coded reason)",
    responses=_WRITE,
)
async def suspend(
    request: Request,
    carer_id: UUID,
    body: SuspendIn,
    principal: Issuer,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """In the same transaction: no free place left, pending holds released (reason
    `agrement_suspendu`, requests back to waiting), children placed there to review."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.suspend(pool, principal, carer_id, body, key, if_match_version(if_match))
    return _answer(answer)


@router.post(
    "/agrements/{carer_id}/reinstate",
    response_model=AgrementOut,
    summary="End the suspension",
    responses=_WRITE,
)
async def reinstate(
    request: Request,
    carer_id: UUID,
    principal: Issuer,
    pool: Pool,
    body: ReinstateIn | None = None,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.reinstate(pool, principal, carer_id, key, if_match_version(if_match))
    return _answer(answer)


@router.post(
    "/agrements/{carer_id}/withdraw",
    response_model=AgrementOut,
    summary="Withdraw the agrément (CASF L421-6, coded reason)",
    responses=_WRITE,
)
async def withdraw(
    request: Request,
    carer_id: UUID,
    body: WithdrawIn,
    principal: Issuer,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """Same consequences as a suspension (reason `agrement_retire`); for good."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.withdraw(
        pool, principal, carer_id, body, key, if_match_version(if_match)
    )
    return _answer(answer)


@router.post(
    "/agrements/{carer_id}/renewal-request",
    response_model=AgrementOut,
    summary="Record the renewal request (the carer, or the issuer)",
    responses={**_WRITE, 403: {"description": "Neither the carer nor the issuer."}},
)
async def renewal_request(
    request: Request,
    carer_id: UUID,
    body: RenewalIn,
    principal: Authenticated,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.request_renewal(
        pool, principal, carer_id, body, key, if_match_version(if_match)
    )
    return _answer(answer)


@router.get(
    "/placements/to-review",
    response_model=ToReviewPage,
    summary="Children placed with a carer whose agrément is not valid today (audited)",
    responses={403: {"description": "Not an authority nor an employing placement service."}},
)
async def to_review(
    principal: Annotated[Principal, Depends(require("placement", "holds.respond"))],
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> object:
    """For an authority: as the placing authority (the request's) or the employing one;
    for a placement service: its carers'. Oldest admission first."""
    return await service.to_review(pool, principal, limit)
