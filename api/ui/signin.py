"""Sign-in: the OIDC configuration the sign-in page needs, and the local dev sign-in.

``PLACES_OIDC_AUTHORIZE_URL`` (``Settings.oidc_authorize_url``): in production, the sign-in
page sends the user there with ``redirect_uri=<origin>/ui/connexion``. With
``PLACES_OIDC_TOKEN_URL`` and ``PLACES_OIDC_CLIENT_ID`` it runs the authorization code flow
with PKCE (S256, a ``state`` checked on return; the code is exchanged by the page, a public
client); otherwise a token returned in the URL fragment (``#access_token=…``) is kept like a
local one.

``POST /ui/dev-token`` is the local issuer's sign-in, enabled only when no
``PLACES_JWT_JWKS_URL`` is configured (the same tokens as ``places token``).
"""

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.auth import issue_token
from api.deps import AppSettings, Pool
from api.errors import NotFound, field_error
from api.settings import Settings
from geo.finess import is_valid_finess

router = APIRouter(tags=["pages"])


def local_issuer(settings: Settings) -> bool:
    """The dev sign-in exists only with the local key pair (no OIDC issuer configured)."""
    return not settings.jwt_jwks_url


def oidc_page(settings: Settings) -> dict[str, Any]:
    """What the sign-in page needs to send the user to the identity provider."""
    pkce = bool(settings.oidc_authorize_url and settings.oidc_token_url and settings.oidc_client_id)
    return {
        "oidc_url": settings.oidc_authorize_url or None,
        "oidc_token_url": settings.oidc_token_url if pkce else None,
        "oidc_client_id": settings.oidc_client_id if pkce else None,
        "oidc_scope": settings.oidc_scope,
    }


class DevTokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "structure", "finess": "690000018"}]},
    )
    role: Literal["structure", "carer", "department", "national", "admin"]
    authority: str | None = Field(
        default=None, max_length=3, description="Role department: the competent authority."
    )
    finess: str | None = Field(default=None, max_length=9)
    carer_id: UUID | None = None


class DevTokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int
    role: str


@router.post(
    "/ui/dev-token",
    response_model=DevTokenOut,
    summary="Local sign-in: a token of the dev issuer (404 when an OIDC issuer is configured)",
    responses={
        404: {"description": "Production: tokens come from the OIDC issuer."},
        422: {"description": "Missing or unknown scope (authority, FINESS, carer)."},
    },
)
async def dev_token(body: DevTokenIn, pool: Pool, settings: AppSettings) -> dict[str, Any]:
    """The same token as ``places token --role …``: the local issuer is a development tool,
    which is why it disappears as soon as ``PLACES_JWT_JWKS_URL`` is set."""
    if not local_issuer(settings):
        raise NotFound("Connexion locale désactivée : un fournisseur OIDC est configuré.")
    scope: dict[str, str | None] = {}
    async with pool.acquire() as conn:
        if body.role == "department":
            if not body.authority or not await conn.fetchval(
                "SELECT true FROM authorities WHERE code = $1", body.authority
            ):
                raise field_error("authority", "choisissez une autorité compétente connue")
            scope["authority"] = body.authority
        elif body.role == "structure":
            finess = (body.finess or "").strip().upper()
            if not is_valid_finess(finess):
                raise field_error("finess", "numéro FINESS invalide (9 caractères, clé de Luhn)")
            if not await conn.fetchval("SELECT true FROM structures WHERE finess = $1", finess):
                raise field_error("finess", f"aucun établissement enregistré sous {finess}")
            scope["finess"] = finess
        elif body.role == "carer":
            if body.carer_id is None or not await conn.fetchval(
                "SELECT true FROM foster_carers WHERE id = $1", body.carer_id
            ):
                raise field_error("carer_id", "identifiant d'assistant familial inconnu")
            scope["carer_id"] = str(body.carer_id)
    token = issue_token(
        body.role,
        authority=scope.get("authority"),
        finess=scope.get("finess"),
        carer_id=scope.get("carer_id"),
        settings=settings,
    )
    return {
        "access_token": token,
        "expires_in": settings.token_ttl_minutes * 60,
        "role": body.role,
    }
