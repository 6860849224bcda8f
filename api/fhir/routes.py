"""FHIR R4 read API (``/fhir``): units as ``Location``, establishments as ``Organization``.

Auth follows the contract's registry reads: a bearer token of any role (the directory is
about establishments, never about a child, and no carer is exported). Every answer,
errors included, is ``application/fhir+json``; errors are ``OperationOutcome`` (401/403
from the token, 400 for a bad or unsupported search parameter, 404, 406). Unknown search
parameters are refused (strict handling) unless the client sends
``Prefer: handling=lenient``, as the FHIR search specification allows.
"""

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from api import precision
from api.auth import Principal, require
from api.errors import FHIR_JSON, BadRequest, NotAcceptable, NotFound, UnsupportedParameter
from api.fhir import repository, resources
from api.reads import ReadPool

DEFAULT_COUNT = 50
MAX_COUNT = 500
LOCATION_PARAMS = {
    "address-state",
    "address-postalcode",
    "organization",
    "_id",
    "_count",
    "_offset",
    "_include",
    "_format",
}
_FORMATS = {"json", "application/json", "application/fhir+json"}


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


Reader = Annotated[Principal, Depends(require("offer.read"))]
router = APIRouter(prefix="/fhir", tags=["fhir"], default_response_class=FhirResponse)

_OUTCOME = {"content": {FHIR_JSON: {}}, "description": "OperationOutcome"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _OUTCOME,
    401: _OUTCOME,
    403: _OUTCOME,
    404: _OUTCOME,
    406: _OUTCOME,
}


def _check_format(request: Request) -> None:
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt not in _FORMATS:
        raise NotAcceptable(f"_format={fmt} : seul le JSON FHIR est servi")


def _values(request: Request, name: str) -> list[str] | None:
    """Comma-separated values of a search parameter (FHIR "OR"), None when absent."""
    given = request.query_params.getlist(name)
    if not given:
        return None
    if len(given) > 1:
        raise BadRequest(f"{name} : un seul paramètre {name} (valeurs séparées par des virgules)")
    values = [v.strip() for v in given[0].split(",")]
    if not all(values):
        raise BadRequest(f"{name} : valeur vide")
    return values


def _ids(request: Request, name: str, prefix: str = "") -> list[UUID] | None:
    values = _values(request, name)
    if values is None:
        return None
    try:
        return [UUID(v.removeprefix(prefix)) for v in values]
    except ValueError as exc:
        raise BadRequest(f"{name} : identifiant attendu (UUID)") from exc


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} : entier de {low} à {high} attendu, reçu {raw!r}")
    return int(raw)


def _page_url(request: Request, offset: int, count: int) -> str:
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k not in {"_offset", "_count"}
    ]
    params += [("_count", str(count)), ("_offset", str(offset))]
    return f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}"


@router.get(
    "/Location",
    summary="Search units (FHIR Location, ROR capacity): Bundle searchset",
    responses=_RESPONSES,
)
async def search_locations(request: Request, principal: Reader, pool: ReadPool) -> dict[str, Any]:
    """Parameters: ``address-state`` (department code, e.g. ``69``, ``2A``, ``974``),
    ``address-postalcode`` (starts with: ``690`` finds ``69003``), ``organization``
    (``Organization/{id}`` or the id), ``_id``; comma-separated values mean "or".
    Paging with ``_count`` (default 50, at most 500; 0 gives the total only) and
    ``_offset``; ``_include=Location:organization`` adds the establishments."""
    _check_format(request)
    unknown = sorted(set(request.query_params) - LOCATION_PARAMS)
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
    if unknown and not lenient:
        raise UnsupportedParameter(
            f"paramètre(s) de recherche non pris en charge : {', '.join(unknown)}"
        )
    include = _values(request, "_include") or []
    if any(i != "Location:organization" for i in include):
        raise UnsupportedParameter("_include : seul Location:organization est pris en charge")
    count = _integer(request, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _integer(request, "_offset", 0, 0, 10_000_000)
    departments = _values(request, "address-state")
    async with pool.acquire() as conn:
        rows, total = await repository.units(
            conn,
            departments=[d.upper() for d in departments] if departments else None,
            postal_codes=_values(request, "address-postalcode"),
            structure_ids=_ids(request, "organization", "Organization/"),
            unit_ids=_ids(request, "_id"),
            limit=count,
            offset=offset,
        )
    base = str(request.base_url).rstrip("/") + "/fhir"
    entries = [
        {
            "fullUrl": f"{base}/Location/{r['id']}",
            "resource": resources.location(precision.fhir_row(r, principal)),
            "search": {"mode": "match"},
        }
        for r in rows
    ]
    if include:
        seen: dict[UUID, dict[str, Any]] = {}
        for r in rows:
            seen.setdefault(r["structure_id"], r)
        entries += [
            {
                "fullUrl": f"{base}/Organization/{sid}",
                "resource": resources.organization(precision.fhir_row(r, principal)),
                "search": {"mode": "include"},
            }
            for sid, r in seen.items()
        ]
    links = [{"relation": "self", "url": _page_url(request, offset, count)}]
    if count:
        links.append({"relation": "first", "url": _page_url(request, 0, count)})
        if offset > 0:
            links.append(
                {"relation": "previous", "url": _page_url(request, max(0, offset - count), count)}
            )
        if offset + count < total:
            links.append({"relation": "next", "url": _page_url(request, offset + count, count)})
        last = max(0, (total - 1) // count * count)
        links.append({"relation": "last", "url": _page_url(request, last, count)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "total": total,
        "link": links,
        "entry": entries,
    }


def _uuid_or_404(value: str, kind: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise NotFound(f"{kind}/{value} introuvable") from exc


@router.get("/Location/{location_id}", summary="One unit (FHIR Location)", responses=_RESPONSES)
async def read_location(
    request: Request, location_id: str, principal: Reader, pool: ReadPool
) -> dict[str, Any]:
    _check_format(request)
    unit_id = _uuid_or_404(location_id, "Location")
    async with pool.acquire() as conn:
        rows, _total = await repository.units(conn, unit_ids=[unit_id], limit=1)
    if not rows:
        raise NotFound(f"Location/{location_id} introuvable")
    return resources.location(precision.fhir_row(rows[0], principal))


@router.get(
    "/Organization/{organization_id}",
    summary="One establishment (FHIR Organization, FINESS identifier)",
    responses=_RESPONSES,
)
async def read_organization(
    request: Request, organization_id: str, principal: Reader, pool: ReadPool
) -> dict[str, Any]:
    _check_format(request)
    structure_id = _uuid_or_404(organization_id, "Organization")
    async with pool.acquire() as conn:
        row = await repository.structure(conn, structure_id)
    if row is None:
        raise NotFound(f"Organization/{organization_id} introuvable")
    return resources.organization(precision.fhir_row(row, principal))


@router.get("/metadata", summary="CapabilityStatement (no token needed)")
async def metadata(request: Request) -> dict[str, Any]:
    """What this server answers, so that FHIR clients can discover it."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "implementation": {
            "description": "Places — offre de protection de l'enfance (profils ROR)",
            "url": str(request.base_url).rstrip("/") + "/fhir",
        },
        "rest": [
            {
                "mode": "server",
                "security": {"description": "Authorization: Bearer <JWT> (tout rôle)"},
                "resource": [
                    {
                        "type": "Location",
                        "profile": resources.LOCATION_PROFILE,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchInclude": ["Location:organization"],
                        "searchParam": [
                            {"name": "address-state", "type": "string"},
                            {"name": "address-postalcode", "type": "string"},
                            {"name": "organization", "type": "reference"},
                            {"name": "_id", "type": "token"},
                        ],
                    },
                    {
                        "type": "Organization",
                        "profile": resources.ORGANIZATION_PROFILE,
                        "interaction": [{"code": "read"}],
                    },
                ],
            }
        ],
    }


def install(app: FastAPI) -> None:
    """Mount ``/fhir``; its refusals become OperationOutcome in ``api.errors``."""
    app.include_router(router)
