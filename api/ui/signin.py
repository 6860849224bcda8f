"""Sign-in: the OIDC configuration the sign-in page needs, and the local dev sign-in.

``PLACES_OIDC_AUTHORIZE_URL`` (``Settings.oidc_authorize_url``): in production, the sign-in
page sends the user there with ``redirect_uri=<origin>/ui/connexion``. With
``PLACES_OIDC_TOKEN_URL`` and ``PLACES_OIDC_CLIENT_ID`` it runs the authorization code flow
with PKCE (S256, a ``state`` checked on return; the code is exchanged by the page, a public
client); otherwise a token returned in the URL fragment (``#access_token=…``) is kept like a
local one.

``POST /ui/dev-token`` is the local issuer's sign-in (the same tokens as ``places token``),
a development tool: it exists only with ``PLACES_DEV_SIGNIN=true`` (``scripts/run`` sets it),
answers only loopback clients, and never mints ``operator`` nor ``authority_admin``. Enabling
it together with any OIDC setting is refused at startup (``check_dev_signin``), so a
production deployment cannot leave it open by forgetting one variable.
"""

import ipaddress
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import issue_token
from api.deps import AppSettings, Pool
from api.errors import Forbidden, NotFound, field_error
from api.settings import Settings
from geo.finess import is_valid_finess

router = APIRouter(tags=["pages"])


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PRODUCTION_SETTINGS = (
    "jwt_jwks_url",
    "jwt_issuer",
    "oidc_authorize_url",
    "oidc_token_url",
    "oidc_client_id",
)
"""Settings that mean an identity provider is configured (``jwt_issuer`` when not the
default): any of them with ``dev_signin`` is refused at startup."""


def production_settings(settings: Settings) -> list[str]:
    """The OIDC settings this configuration sets, as ``PLACES_…`` names."""
    default_issuer = Settings.model_fields["jwt_issuer"].default
    names = []
    for field in PRODUCTION_SETTINGS:
        value = getattr(settings, field)
        if (value != default_issuer) if field == "jwt_issuer" else bool(value):
            names.append(f"PLACES_{field.upper()}")
    return names


def check_dev_signin(settings: Settings) -> None:
    """Refuse to start a production configuration with the dev sign-in or the local roles
    enabled; also checks that ``PLACES_TRUSTED_PROXIES`` parses."""
    trusted_proxies(settings)
    names = production_settings(settings)
    if not names:
        return
    for enabled, name in (
        (settings.dev_signin, "PLACES_DEV_SIGNIN"),
        (settings.local_roles, "PLACES_LOCAL_ROLES"),
    ):
        if enabled:
            raise ValueError(
                f"{name}=true is a development setting and cannot be combined with an"
                f" identity provider ({', '.join(names)}): unset {name} in production."
            )


def local_issuer(settings: Settings) -> bool:
    """The dev sign-in (page form and ``POST /ui/dev-token``) exists only when enabled."""
    return settings.dev_signin


def trusted_proxies(settings: Settings) -> list[IPNetwork]:
    """``PLACES_TRUSTED_PROXIES``: comma-separated IPs or CIDRs (a ``ValueError`` names a bad
    entry)."""
    networks: list[IPNetwork] = []
    for entry in (settings.trusted_proxies or "").split(","):
        if entry.strip():
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"PLACES_TRUSTED_PROXIES: {entry.strip()!r} {exc}") from exc
    return networks


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(
    request: Request, settings: Settings
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The real client: the TCP peer, or, when the peer is a trusted proxy, the rightmost
    ``X-Forwarded-For`` entry that is not itself a trusted proxy. ``None`` when unknown."""
    peer = _address(request.client.host) if request.client else None
    proxies = trusted_proxies(settings)

    def trusted(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(a in n for n in proxies)

    if peer is None or not trusted(peer):
        return peer
    chain = [e for h in request.headers.getlist("x-forwarded-for") for e in h.split(",")]
    for entry in reversed(chain):
        hop = _address(entry)
        if hop is None:
            return None  # a malformed hop: the client cannot be known
        if not trusted(hop):
            return hop
    return peer if not chain else _address(chain[0])


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
        json_schema_extra={"examples": [{"role": "structure", "finess": "690000013"}]},
    )
    role: Literal["structure", "carer", "department", "national"]
    authority: str | None = Field(
        default=None, max_length=3, description="Role department: the competent authority."
    )
    finess: str | None = Field(default=None, max_length=9)
    carer_id: UUID | None = None
    agrement: str | None = Field(
        default=None,
        max_length=40,
        description="Role carer: the agrément number (what a carer knows), instead of carer_id.",
    )


class DevTokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int
    role: str


async def dev_signin_allowed(request: Request, settings: AppSettings) -> None:
    """404 when the dev sign-in is off, 403 for a client not on loopback: resolved before the
    body, so a disabled or remote sign-in says so whatever is posted."""
    if not local_issuer(settings):
        raise NotFound("Connexion locale désactivée (PLACES_DEV_SIGNIN).")
    client = client_address(request, settings)
    if client is None or not client.is_loopback:
        raise Forbidden("La connexion locale n'accepte que les clients de cette machine.")


@router.post(
    "/ui/dev-token",
    dependencies=[Depends(dev_signin_allowed)],
    response_model=DevTokenOut,
    summary="Local sign-in: a token of the dev issuer (only with PLACES_DEV_SIGNIN, loopback)",
    responses={
        403: {"description": "The client is not on this machine (loopback only)."},
        404: {"description": "PLACES_DEV_SIGNIN is off (production): tokens come from OIDC."},
        422: {
            "description": "An administrative role (operator, authority_admin), or a missing"
            " or unknown scope (authority, FINESS, carer)."
        },
    },
)
async def dev_token(body: DevTokenIn, pool: Pool, settings: AppSettings) -> dict[str, Any]:
    """The same token as ``places token --role …``, for local development only: off unless
    ``PLACES_DEV_SIGNIN=true``, loopback clients only (checked by ``dev_signin_allowed``,
    before the body is read), never an operator's or an authority administrator's (the body's
    ``role`` cannot name them; ``places token`` can)."""
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
        elif body.role == "carer" and body.agrement is not None:
            # A carer knows their agrément number, not the service's id for them.
            number = body.agrement.strip()
            carer = await conn.fetchval(
                "SELECT id FROM foster_carers WHERE agrement_number = $1", number
            )
            if carer is None:
                raise field_error("agrement", f"aucun assistant familial agréé sous « {number} »")
            scope["carer_id"] = str(carer)
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
