"""Placement requests and their audit trail (permissions ``placement`` and ``audit.read``).

The national role, structures and carers get 403 on every route here: these are child-level
records. A placement service (role ``department``) reaches the requests of its competent
authority only. Reads are audited (see ``api.requests.service``).
"""

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Principal, require
from api.deps import (
    AppSettings,
    AuthorityFilter,
    IdempotencyHeader,
    IfMatchHeader,
    Pool,
    idempotency,
    if_match_version,
)
from api.errors import PreconditionRequired
from api.requests import service
from api.requests.schemas import (
    AuditPage,
    CancellationIn,
    HistoryOut,
    RequestIn,
    RequestOut,
    RequestPage,
    RequestStatus,
    SituationIn,
    UnexecutedPage,
)
from api.responses import written

router = APIRouter(prefix="/v1", tags=["orientation"])

DepartmentUser = Annotated[Principal, Depends(require("placement"))]
AuditReader = Annotated[Principal, Depends(require("audit.read"))]
"""Who reads an authority's trail (``GET /v1/audit``, the page "Qui a consulté nos
données"): the functions with ``audit.read`` in ``api.permissions``."""
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]

_CHILD_LEVEL: dict[int | str, dict[str, Any]] = {
    403: {"description": "National, structure, carer and operator roles; or another authority."},
}
_LIST: dict[int | str, dict[str, Any]] = {
    **_CHILD_LEVEL,
    422: {
        "description": "Unknown `authority`, or a `department` of several authorities (`69`): "
        "`errors[0]` names the field and lists the `choices`."
    },
}


@router.post(
    "/requests",
    status_code=201,
    response_model=RequestOut,
    summary="Create a placement request (demande d'orientation)",
    responses={
        **_CHILD_LEVEL,
        422: {
            "description": "Unknown field (a name, a birth date, an address…), unknown "
            "commune, point outside France, decision in the future, an `authority` that is "
            "not the origin's; `errors[].field` names it."
        },
    },
)
async def create_request(
    request: Request,
    body: RequestIn,
    principal: DepartmentUser,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Children are described by age, sex and disability profiles only. A point origin is
    stored rounded to 0.01°. The request belongs to the origin's competent authority (the
    commune's; for a point, the nearest commune's): the token must be of that authority.
    Idempotency-Key is optional (recommended)."""
    key = idempotency(request, idempotency_key, required=False)
    answer = await service.create(pool, principal, body, key)
    return written(answer, {"Location": f"/v1/requests/{answer.body['id']}"})


@router.get(
    "/requests",
    response_model=RequestPage,
    summary="An authority's requests (the waiting list with status=waiting)",
    responses=_LIST,
)
async def list_requests(
    principal: DepartmentUser,
    pool: Pool,
    authority: AuthorityFilter,
    status: RequestStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Oldest decision first, each with `days_since_decision`. One audit entry per call."""
    return await service.list_requests(pool, principal, authority, status, limit, offset)


@router.get(
    "/requests/unexecuted",
    response_model=UnexecutedPage,
    summary="Measures not executed: requests not placed N days after the decision",
    responses=_LIST,
)
async def list_unexecuted(
    principal: DepartmentUser,
    pool: Pool,
    settings: AppSettings,
    authority: AuthorityFilter,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Waiting or held (not yet admitted) requests whose decision is at least
    `PLACES_UNEXECUTED_AFTER_DAYS` days old (default 30), oldest first."""
    return await service.list_unexecuted(
        pool, principal, authority, limit, offset, settings.unexecuted_after_days
    )


@router.get(
    "/requests/{request_id}",
    response_model=RequestOut,
    summary="One request (audited read)",
    responses={**_CHILD_LEVEL, 404: {"description": "Unknown request."}},
)
async def read_request(request_id: UUID, principal: DepartmentUser, pool: Pool) -> object:
    return await service.read(pool, principal, request_id)


@router.get(
    "/requests/{request_id}/history",
    response_model=HistoryOut,
    summary="A request's status history (audited read)",
    responses={**_CHILD_LEVEL, 404: {"description": "Unknown request."}},
)
async def request_history(request_id: UUID, principal: DepartmentUser, pool: Pool) -> object:
    return await service.history(pool, principal, request_id)


@router.post(
    "/requests/{request_id}/cancel",
    response_model=RequestOut,
    summary="Cancel a waiting request",
    responses={
        **_CHILD_LEVEL,
        404: {"description": "Unknown request."},
        409: {"description": "The request is not waiting (held, placed, closed)."},
    },
)
async def cancel_request(
    request_id: UUID, body: CancellationIn, principal: DepartmentUser, pool: Pool
) -> object:
    """`reason_code` required (`reason` alone, as before the codes: recorded as `autre`)."""
    return await service.cancel(pool, principal, request_id, body.outcome())


@router.put(
    "/requests/{request_id}/situation",
    response_model=RequestOut,
    summary="Record where the child lives while waiting (situation d'attente)",
    responses={
        **_CHILD_LEVEL,
        404: {"description": "Unknown request."},
        409: {
            "description": "Stale If-Match version, or the request is no longer waiting or "
            "held (placed, exited, cancelled)."
        },
        422: {"description": "Unknown code, or `since` in the future or before the decision."},
        428: {"description": "If-Match header missing."},
    },
)
async def put_situation(
    request: Request,
    request_id: UUID,
    body: SituationIn,
    principal: DepartmentUser,
    pool: Pool,
    idempotency_key: IdempotencyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    """A new row of the child's waiting situation from `since` (default today); the request's
    `version` goes up. If-Match (the request's `version`) is required: the situation is
    recorded on what was read. Idempotency-Key is optional (recommended)."""
    key = idempotency(request, idempotency_key, required=False)
    version = if_match_version(if_match)
    if version is None:
        raise PreconditionRequired(
            "If-Match : en-tête requis (la version de la demande).",
            errors=[{"field": "If-Match", "message": "required"}],
        )
    answer = await service.set_situation(pool, principal, request_id, body, key, version)
    return written(answer, {"ETag": f'"{answer.body["version"]}"'})


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Audit trail of an authority's requests and holds",
    responses=_LIST,
)
async def read_audit(
    principal: AuditReader,
    pool: Pool,
    authority: AuthorityFilter,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    readers: Annotated[
        Literal["all", "outside"],
        Query(
            description="`outside`: only the entries of readers from outside the authority"
            " (every role but the authority's own placement service: admin, establishments,"
            " carers…) — who read our children's data."
        ),
    ] = "all",
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Who read or changed what, when, under which role; newest first. With `object_id` (a
    request id): entries on the request, on its holds, and the list reads that returned it."""
    return await service.audit_trail(
        pool, principal, authority, object_id, limit, offset, outside=readers == "outside"
    )
