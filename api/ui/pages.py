"""The HTML pages: sign-in, departments, department dashboard, national steering, declaration.

Each route renders a template with public reference data only (department names, communes,
the map); the figures are fetched by the page itself from the ``/v1`` API with the user's
token, so these routes need no authentication.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import AppSettings
from api.ui.geo import communes_of
from api.ui.render import france_map, render
from api.ui.signin import local_issuer, oidc_page
from geo.referential import (
    authorities_of_department,
    load_authorities,
    load_departments,
    neighbours,
)
from matching.relaxation import LADDER

router = APIRouter(tags=["pages"])
"""HTML pages stay out of the OpenAPI schema; the JSON endpoints the pages use are in it."""


def _departments() -> list[dict[str, str]]:
    return [{"code": d.code, "name": d.name} for d in load_departments().values()]


def _authorities(codes: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """Competent authorities (all, or ``codes``) as the pages show them: code and name."""
    return [
        {"code": a.code, "name": a.name}
        for a in load_authorities().values()
        if codes is None or a.code in codes
    ]


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/connexion", status_code=307)


@router.get(
    "/ui/connexion", response_class=HTMLResponse, include_in_schema=False, summary="Sign-in page"
)
async def sign_in_page(request: Request, settings: AppSettings) -> Response:
    oidc = oidc_page(settings)
    return render(
        request,
        settings,
        "connexion.html",
        title="Connexion",
        authorities=_authorities(),
        oidc_url=oidc["oidc_url"],
        page={"local": local_issuer(settings), **oidc},
    )


@router.get(
    "/ui/departements",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Choose a department",
)
async def departments_page(request: Request, settings: AppSettings) -> Response:
    return render(
        request, settings, "departements.html", title="Départements", departments=_departments()
    )


@router.get(
    "/ui/departements/{code}",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Department dashboard",
)
async def department_page(request: Request, settings: AppSettings, code: str) -> Response:
    """``code`` is a department's; an authority's code (a placement service's home, ``69M``,
    ``20R``) leads to the dashboard of its first department."""
    department = load_departments().get(code)
    authority = load_authorities().get(code)
    if department is None and authority is not None:
        return RedirectResponse(f"/ui/departements/{authority.departments[0]}", status_code=307)
    if department is None:
        return render(
            request,
            settings,
            "introuvable.html",
            status_code=404,
            title="Département inconnu",
            message=f"Aucun département ne porte le code « {code} ».",
        )
    communes = communes_of(code)
    origin = max(communes, key=lambda c: c.population) if communes else None
    return render(
        request,
        settings,
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
            "authorities": _authorities(authorities_of_department(code)),
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
async def national_page(request: Request, settings: AppSettings) -> Response:
    return render(
        request,
        settings,
        "national.html",
        title="Pilotage national",
        france_map=france_map(),
        page={"departments": _departments()},
    )


@router.get(
    "/ui/declarer", response_class=HTMLResponse, include_in_schema=False, summary="Declaration page"
)
async def declaration_page(request: Request, settings: AppSettings) -> Response:
    return render(request, settings, "declarer.html", title="Déclarer mes places")
