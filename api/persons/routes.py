"""``/v1/me`` (who the token names, what they may do, sign out everywhere) and the
habilitations of an authority (``/v1/authorities/{code}/habilitations``), administered by the
authority's administrators (the platform operator grants those)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from api.auth import Authenticated
from api.deps import AppSettings, IdempotencyHeader, Pool, idempotency
from api.permissions import FUNCTIONS
from api.persons import service
from api.persons.schemas import (
    HabilitationIn,
    HabilitationOut,
    HabilitationPage,
    MeOut,
    SignedOutOut,
)
from api.responses import written

router = APIRouter(prefix="/v1", tags=["persons"])

AuthorityCode = Annotated[str, Path(max_length=3, pattern=r"^[0-9][0-9A-Z]{1,2}$")]
_ADMIN: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "Not an administrator of this authority (or a function they may not"
        " grant: authority administrators are granted by the platform operator)."
    },
    404: {"description": "Unknown authority (or habilitation)."},
}


@router.get("/me", response_model=MeOut, summary="Who the token names and what they may do")
async def me(request: Request, principal: Authenticated) -> object:
    """The person (``sub`` of the identity provider: give it to your authority's administrator
    to be habilitated), the habilitation this request acts under and every live one (name one
    with `X-Places-Habilitation` when there are several)."""
    entry = await request.app.state.directory.entry(principal.issuer, principal.sub)
    return {
        "sub": principal.sub,
        "issuer": principal.issuer,
        "person_id": entry.person_id,
        "display_name": entry.display_name,
        "email": entry.email,
        "siret": entry.siret,
        "rpps": entry.rpps,
        "role": principal.role,
        "function": principal.function,
        "authority": principal.authority,
        "finess": principal.finess,
        "carer_id": principal.carer_id,
        "permissions": sorted(principal.permissions),
        "habilitations": [
            {
                "id": g.id,
                "function": g.function,
                "function_label": FUNCTIONS[g.function].label,
                "authority": g.authority,
                "finess": g.finess,
                "carer_id": g.carer_id,
            }
            for g in entry.grants
        ],
    }


@router.post(
    "/me/sign-out-everywhere",
    response_model=SignedOutOut,
    summary="Sign out everywhere: every token of this person issued until now stops working",
)
async def sign_out_everywhere(request: Request, principal: Authenticated, pool: Pool) -> object:
    """Applies at once on every worker (open live feeds close at their next check). Tokens
    issued in the same second as the sign-out are refused too (``iat`` counts whole seconds)."""
    return await service.sign_out_everywhere(pool, request.app.state.directory, principal)


@router.get(
    "/authorities/{code}/habilitations",
    response_model=HabilitationPage,
    summary="The habilitations of an authority (its administrators, the platform operator)",
    responses=_ADMIN,
)
async def list_habilitations(
    code: AuthorityCode,
    principal: Authenticated,
    pool: Pool,
    include_revoked: Annotated[bool, Query()] = False,
) -> object:
    return await service.list_habilitations(pool, principal, code, include_revoked)


@router.post(
    "/authorities/{code}/habilitations",
    response_model=HabilitationOut,
    status_code=201,
    summary="Grant a function on the authority (or one of its FINESS or carers) to a person",
    responses={
        **_ADMIN,
        409: {"description": "The person already holds this habilitation."},
        422: {"description": "Unknown function, a FINESS or carer outside the authority…"},
        428: {"description": "Idempotency-Key missing."},
    },
)
async def grant(
    request: Request,
    code: AuthorityCode,
    body: HabilitationIn,
    principal: Authenticated,
    pool: Pool,
    settings: AppSettings,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    key = idempotency(request, idempotency_key, required=True)
    answer = await service.grant(
        pool, request.app.state.directory, principal, code, body, settings.jwt_issuer, key
    )
    return written(answer, {"Location": f"{request.url.path}/{answer.body['id']}"})


@router.delete(
    "/authorities/{code}/habilitations/{habilitation_id}",
    response_model=HabilitationOut,
    summary="Revoke a habilitation: effective at once, on every worker",
    responses=_ADMIN,
)
async def revoke(
    request: Request,
    code: AuthorityCode,
    habilitation_id: Annotated[int, Path(ge=1, le=2**62)],
    principal: Authenticated,
    pool: Pool,
) -> object:
    """Idempotent: revoking a revoked habilitation answers it unchanged."""
    return await service.revoke(pool, request.app.state.directory, principal, code, habilitation_id)
