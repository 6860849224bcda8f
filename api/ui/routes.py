"""The pages: sign-in, department dashboard, national steering, declaration.

Why server-rendered templates plus a little vanilla JavaScript: the pages must work on the
phones and old office PCs of establishments, load nothing from a CDN, and stay readable by
the next maintainer. The server renders the frame and public reference data (department
names, the map); every figure comes from the same ``/v1`` API and the same bearer tokens as
any other client, called from the browser. The token lives in ``sessionStorage`` (one tab,
gone when it closes), never in a cookie, so these HTML pages need no CSRF protection and
carry no personal data.

Besides the pages, three small endpoints serve the pages only:

* ``POST /ui/dev-token`` — the local issuer's sign-in, enabled only when no
  ``PLACES_JWT_JWKS_URL`` is configured (the same tokens as ``places token``).
* ``GET /ui/api/moi`` — what the signed-in establishment or carer may declare (the ``/v1``
  API has no "my structure" read; the data is the registry's).
* ``GET /ui/geo/communes`` — commune names and centres from the committed referential, to
  place carers at commune level on the maps (never their home).

``PLACES_OIDC_AUTHORIZE_URL`` (``Settings.oidc_authorize_url``): in production, the sign-in
page sends the user there with ``redirect_uri=<origin>/ui/connexion``. With
``PLACES_OIDC_TOKEN_URL`` and ``PLACES_OIDC_CLIENT_ID`` it runs the authorization code flow
with PKCE (S256, a ``state`` checked on return; the code is exchanged by the page, a public
client); otherwise a token returned in the URL fragment (``#access_token=…``) is kept like a
local one.
"""

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AnyPrincipal, Principal, issue_token
from api.capacity.repository import CARER_PUBLIC_COLUMNS
from api.deps import Pool
from api.errors import Forbidden, NotFound, field_error
from api.registry.repository import structure_by_id
from api.registry.schemas import FosterCarerOut, StructureOut
from api.settings import get_settings
from api.stats.routes import router as stats_router
from geo.finess import is_valid_finess
from geo.referential import Commune, load_communes, load_departments, neighbours
from matching.relaxation import LADDER

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MAP_FILE = STATIC / "france-departments.svg"

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
router = APIRouter(tags=["pages"])
"""HTML pages stay out of the OpenAPI schema; the JSON endpoints the pages use are in it."""

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the statistics they read (one call from
    ``create_app``, so that main.py keeps a single line for all of it)."""
    app.include_router(stats_router)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


# --- rendering ---------------------------------------------------------------------------


@cache
def _static_version(name: str) -> str:
    """Content hash in the URL: browsers may cache static files, and see a new one at once."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    return f"/ui/static/{name}?v={_static_version(name)}"


@cache
def france_map() -> str:
    """The committed SVG (built by ``api.ui.build_assets``), inlined so pages can colour it."""
    return MAP_FILE.read_text(encoding="utf-8")


def oidc_authorize_url() -> str | None:
    return get_settings().oidc_authorize_url or None


def oidc_page() -> dict[str, Any]:
    """What the sign-in page needs to send the user to the identity provider."""
    s = get_settings()
    pkce = bool(s.oidc_authorize_url and s.oidc_token_url and s.oidc_client_id)
    return {
        "oidc_url": oidc_authorize_url(),
        "oidc_token_url": s.oidc_token_url if pkce else None,
        "oidc_client_id": s.oidc_client_id if pkce else None,
        "oidc_scope": s.oidc_scope,
    }


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a configured URL, for the page's connect-src."""
    m = re.match(r"^(https?://[A-Za-z0-9.\-]+(?::\d{1,5})?)(?:/|$)", url or "")
    return m.group(1) if m else None


def local_issuer() -> bool:
    """The dev sign-in exists only with the local key pair (no OIDC issuer configured)."""
    return not get_settings().jwt_jwks_url


def _csp(request: Request) -> str:
    host = request.headers.get("host", request.url.netloc)
    if not _HOST.fullmatch(host):
        host = "localhost"  # a Host header must never write policy directives
    token = _origin(oidc_page()["oidc_token_url"])  # the page exchanges its PKCE code there
    connect = f"'self' ws://{host} wss://{host}" + (f" {token}" if token else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    settings = get_settings()
    page = {
        "stale_after_days": settings.stale_after_days,
        "unexecuted_after_days": settings.unexecuted_after_days,
        **context.pop("page", {}),
    }
    html = _env.get_template(template).render(
        static_url=static_url,
        page=page,
        local_issuer=local_issuer(),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": _csp(request),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )


@cache
def communes_of(code: str) -> tuple[Commune, ...]:
    """A department's communes (the referential holds 35,000; pages ask per department)."""
    return tuple(c for c in load_communes().values() if c.department == code)


def _departments() -> list[dict[str, str]]:
    return [{"code": d.code, "name": d.name} for d in load_departments().values()]


# --- pages -------------------------------------------------------------------------------


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/connexion", status_code=307)


@router.get(
    "/ui/connexion", response_class=HTMLResponse, include_in_schema=False, summary="Sign-in page"
)
async def sign_in_page(request: Request) -> Response:
    return render(
        request,
        "connexion.html",
        title="Connexion",
        departments=_departments(),
        oidc_url=oidc_authorize_url(),
        page={"local": local_issuer(), **oidc_page()},
    )


@router.get(
    "/ui/departements",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Choose a department",
)
async def departments_page(request: Request) -> Response:
    return render(request, "departements.html", title="Départements", departments=_departments())


@router.get(
    "/ui/departements/{code}",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Department dashboard",
)
async def department_page(request: Request, code: str) -> Response:
    department = load_departments().get(code)
    if department is None:
        return render(
            request,
            "introuvable.html",
            status_code=404,
            title="Département inconnu",
            message=f"Aucun département ne porte le code « {code} ».",
        )
    communes = communes_of(code)
    origin = max(communes, key=lambda c: c.population) if communes else None
    return render(
        request,
        "departement.html",
        title=f"{department.name} ({code})",
        department=department,
        communes=sorted(communes, key=lambda c: c.name),
        france_map=france_map(),
        page={
            "code": code,
            "name": department.name,
            "overseas": department.overseas,
            "neighbours": sorted(neighbours(code)),
            "origin": origin.insee if origin else None,
            "relaxations": {s.code: s.label for s in LADDER},
        },
    )


@router.get(
    "/ui/national",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="National steering dashboard",
)
async def national_page(request: Request) -> Response:
    return render(
        request,
        "national.html",
        title="Pilotage national",
        france_map=france_map(),
        page={"departments": _departments()},
    )


@router.get(
    "/ui/declarer", response_class=HTMLResponse, include_in_schema=False, summary="Declaration page"
)
async def declaration_page(request: Request) -> Response:
    return render(request, "declarer.html", title="Déclarer mes places")


# --- local sign-in -----------------------------------------------------------------------


class DevTokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "structure", "finess": "690000018"}]},
    )
    role: Literal["structure", "carer", "department", "national", "admin"]
    department: str | None = Field(default=None, max_length=3)
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
        422: {"description": "Missing or unknown scope (department, FINESS, carer)."},
    },
)
async def dev_token(body: DevTokenIn, pool: Pool) -> dict[str, Any]:
    """The same token as ``places token --role …``: the local issuer is a development tool,
    which is why it disappears as soon as ``PLACES_JWT_JWKS_URL`` is set."""
    if not local_issuer():
        raise NotFound("Connexion locale désactivée : un fournisseur OIDC est configuré.")
    settings = get_settings()
    scope: dict[str, str | None] = {}
    async with pool.acquire() as conn:
        if body.role == "department":
            if not body.department or not await conn.fetchval(
                "SELECT true FROM departments WHERE code = $1", body.department
            ):
                raise field_error("department", "choisissez un département connu")
            scope["department"] = body.department
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
    token = issue_token(body.role, settings=settings, **scope)
    return {
        "access_token": token,
        "expires_in": settings.token_ttl_minutes * 60,
        "role": body.role,
    }


# --- what the signed-in user declares ----------------------------------------------------


class DeclarantOut(BaseModel):
    """An establishment with its units and snapshots, or a carer (commune level)."""

    kind: Literal["structure", "carer"]
    structure: StructureOut | None = None
    carer: FosterCarerOut | None = None
    commune_name: str | None = None


@router.get(
    "/ui/api/moi",
    response_model=DeclarantOut,
    summary="The establishment or carer the signed-in user declares for (declaration page)",
    responses={
        403: {"description": "National role, or a scope that is not the caller's."},
        404: {"description": "Unknown FINESS or carer."},
    },
)
async def declarant(
    principal: AnyPrincipal,
    pool: Pool,
    finess: Annotated[str | None, Query(max_length=9)] = None,
    carer: Annotated[UUID | None, Query()] = None,
) -> dict[str, Any]:
    """Structure and carer roles get their own record; admin names one (``finess`` or
    ``carer``); a department names one of its carers (it may declare for them)."""
    target_finess, target_carer = _declarant_scope(principal, finess, carer)
    async with pool.acquire() as conn:
        if target_finess is not None:
            structure_id = await conn.fetchval(
                "SELECT id FROM structures WHERE finess = $1", target_finess
            )
            structure = await structure_by_id(conn, structure_id) if structure_id else None
            if structure is None:
                raise NotFound(f"Aucun établissement enregistré sous le FINESS {target_finess}.")
            return {
                "kind": "structure",
                "structure": structure,
                "commune_name": _commune_name(structure["commune"]),
            }
        row = await conn.fetchrow(
            f"SELECT {CARER_PUBLIC_COLUMNS} FROM foster_carers WHERE id = $1", target_carer
        )
    if row is None:
        raise NotFound("Assistant familial inconnu.")
    if principal.role == "department" and row["department"] != principal.department:
        raise Forbidden("Cet assistant familial dépend d'un autre département.")
    return {"kind": "carer", "carer": dict(row), "commune_name": _commune_name(row["commune"])}


def _declarant_scope(
    principal: Principal, finess: str | None, carer: UUID | None
) -> tuple[str | None, UUID | None]:
    if principal.role == "structure":
        return principal.finess, None
    if principal.role == "carer":
        return None, UUID(principal.carer_id) if principal.carer_id else None
    if principal.role == "admin" and (finess or carer):
        return (finess.strip().upper() if finess else None), carer
    if principal.role == "department" and carer is not None:
        return None, carer
    if principal.role in ("admin", "department"):
        raise field_error("finess", "précisez ?finess=… (établissement) ou ?carer=… (AF)")
    raise Forbidden("Le rôle national ne déclare pas de places.")


def _commune_name(insee: str) -> str | None:
    commune = load_communes().get(insee)
    return commune.name if commune else None


# --- reference data for the maps ---------------------------------------------------------


@router.get(
    "/ui/geo/communes",
    summary="Commune names and centres (committed referential), for the maps",
    responses={422: {"description": "Neither department nor insee, or too many codes."}},
)
async def communes(
    department: Annotated[str | None, Query(max_length=3)] = None,
    insee: Annotated[str | None, Query(max_length=12_000)] = None,
) -> Response:
    """Public reference data (COG, GeoNames): cacheable, no token needed. Carers appear on
    the maps at their commune's centre, never at their home."""
    table = load_communes()
    if department:
        rows = list(communes_of(department))
    elif insee:
        codes = [code for code in insee.split(",") if code][:2000]
        rows = [table[code] for code in codes if code in table]
    else:
        raise field_error("department", "department ou insee requis")
    body = {
        "items": [
            {
                "insee": c.insee,
                "name": c.name,
                "department": c.department,
                "lat": c.lat,
                "lon": c.lon,
                "population": c.population,
            }
            for c in rows
        ]
    }
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=86400"},
    )
