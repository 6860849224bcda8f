"""The HTML pages: sign-in, authorities, an authority's dashboard, national steering, declaration.

Each route renders a template with public reference data only (authority and department
names, communes, the map); the figures are fetched by the page itself from the ``/v1`` API
with the user's token, so these routes need no authentication.
"""

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.codes import (
    CANCELLATION_LABELS,
    EXIT_LABELS,
    HOLD_RELEASE_REASONS,
    REFUSAL_LABELS,
    RELEASE_LABELS,
    WAITING_SITUATION_LABELS,
)
from api.deps import AppSettings
from api.permissions import FUNCTIONS
from api.ui.geo import communes_of_authority
from api.ui.render import france_map, render
from api.ui.signin import local_issuer, oidc_page
from geo.referential import (
    Authority,
    authorities_of_department,
    load_authorities,
    load_departments,
    neighbours,
)
from matching.disability import DISABILITY_UNSTATED, DISABILITY_UNSTATED_LABEL
from matching.relaxation import LADDER

router = APIRouter(tags=["pages"])
"""HTML pages stay out of the OpenAPI schema; the JSON endpoints the pages use are in it."""


def _departments() -> list[dict[str, object]]:
    """Departments with their names; ``apart`` when the department is not one authority under
    its own code (2A, 2B, 67, 68 in a collectivity; 69 shared by two)."""
    return [
        {"code": d.code, "name": d.name, "apart": authorities_of_department(d.code) != (d.code,)}
        for d in load_departments().values()
    ]


def _authorities(codes: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """Competent authorities (all, or ``codes``) as the pages show them: code and name."""
    return [
        {"code": a.code, "name": a.name}
        for a in load_authorities().values()
        if codes is None or a.code in codes
    ]


@router.get("/", include_in_schema=False)
@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def home() -> RedirectResponse:
    """The sign-in page; a signed-in user is sent on from there to their role's home (the
    server cannot tell: the token lives in the tab's ``sessionStorage``)."""
    return RedirectResponse("/ui/connexion", status_code=307)


LEGAL_PAGES = {
    "accessibilite": ("accessibilite.html", "Déclaration d'accessibilité"),
    "mentions-legales": ("mentions-legales.html", "Mentions légales"),
    "donnees-personnelles": ("donnees-personnelles.html", "Données personnelles"),
}
"""The pages every State service links from its footer (RGAA's accessibility statement, the
legal notices of the LCEN art. 6, the personal data notice of the RGPD art. 13)."""


@router.get("/ui/accessibilite", include_in_schema=False)
@router.get("/ui/mentions-legales", include_in_schema=False)
@router.get("/ui/donnees-personnelles", include_in_schema=False)
async def legal_page(request: Request, settings: AppSettings) -> Response:
    template, title = LEGAL_PAGES[request.url.path.rsplit("/", 1)[1]]
    return render(request, settings, template, title=title)


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
    "/ui/autorites",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Choose a competent authority",
)
async def authorities_page(request: Request, settings: AppSettings) -> Response:
    return render(
        request,
        settings,
        "autorites.html",
        title="Autorités compétentes",
        authorities=[
            {"code": a.code, "name": a.name, "where": _where(a)}
            for a in load_authorities().values()
        ],
    )


def _where(authority: Authority) -> str:
    """The departments an authority covers, when its code does not say it: ``2A, 2B`` for
    20R, ``une partie du 69, l'autre : Métropole de Lyon`` for 69D; empty for a department
    under its own code."""
    departments = authority.departments
    shared = [
        other
        for department in departments
        for other in authorities_of_department(department)
        if other != authority.code
    ]
    if shared:
        others = ", ".join(load_authorities()[o].name for o in shared)
        return f"une partie du {', '.join(departments)}, l'autre : {others}"
    if departments != (authority.code,):
        return ", ".join(departments)
    return ""


def unknown_authority(request: Request, settings: AppSettings, code: str) -> Response:
    """The 404 page of an authority code nobody has."""
    return render(
        request,
        settings,
        "introuvable.html",
        status_code=404,
        title="Autorité inconnue",
        message=f"Aucune autorité compétente ne porte le code « {code} ».",
    )


def first_screen(code: str) -> dict[str, str | None]:
    """The API reads of the dashboard's first screen (its key figures, waiting list and holds)
    → the permission each needs: started by ``amorce.js`` while the page's scripts load, read
    by ``autorite.js`` under the same paths. The offer, the map and the agréments come after
    the waiting list is usable (loadtests/bench_pages.py)."""
    scope = f"authority={quote(code, safe='')}"
    return {
        "/v1/me": None,
        f"/v1/stats/authorities?{scope}": None,
        f"/v1/requests?{scope}&status=waiting&limit=500": "placement",
        f"/v1/requests?{scope}&status=held&limit=500": "placement",
    }


@router.get(
    "/ui/autorites/{code}",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Dashboard of a competent authority",
)
async def authority_page(request: Request, settings: AppSettings, code: str) -> Response:
    """The placement service's dashboard of one authority (``69M``, ``20R``, ``38``…). A
    department's code that is not an authority's (``2A``, ``67``, ``69``) goes through
    ``/ui/departements/{code}``, which knows its authorities."""
    authority = load_authorities().get(code)
    if authority is None and code in load_departments():
        return RedirectResponse(f"/ui/departements/{code}", status_code=307)
    if authority is None:
        return unknown_authority(request, settings, code)
    departments = load_departments()
    communes = communes_of_authority(code)
    origin = max(communes, key=lambda c: c.population) if communes else None
    around = set().union(*(neighbours(d) for d in authority.departments)) - set(
        authority.departments
    )
    # Authorities that share a department with this one (69M and 69D): their communes are
    # on the same shape, so the page draws this one's communes to show where it is.
    partners = [
        other
        for department in authority.departments
        for other in authorities_of_department(department)
        if other != code
    ]
    return render(
        request,
        settings,
        "autorite.html",
        title=f"{authority.name} ({code})",
        authority=authority,
        communes=sorted(communes, key=lambda c: c.name),
        page={
            "code": code,
            "first_screen": first_screen(code),
            "name": authority.name,
            "departments": [
                {"code": d, "name": departments[d].name} for d in authority.departments
            ],
            "overseas": all(departments[d].overseas for d in authority.departments),
            "neighbours": sorted(around),
            "partners": _authorities(tuple(partners)),
            "origin": origin.insee if origin else None,
            "relaxations": {
                **{s.code: s.label for s in LADDER},
                DISABILITY_UNSTATED: DISABILITY_UNSTATED_LABEL,
            },
            # The coded outcomes' labels (api/codes.py, one list each), as [code, label] pairs
            # in their order ("autre" last: tojson would sort a mapping's keys): a release's
            # reasons the service may give (not Places's own, on an agrément's suspension or
            # withdrawal), a refusal's (to read the one an establishment gave), the waiting
            # situations.
            "release_reasons": [
                [code, label]
                for code, label in RELEASE_LABELS.items()
                if code not in HOLD_RELEASE_REASONS.values()
            ],
            "refusal_reasons": list(map(list, REFUSAL_LABELS.items())),
            "situations": list(map(list, WAITING_SITUATION_LABELS.items())),
            "cancellation_reasons": list(map(list, CANCELLATION_LABELS.items())),
            "exit_reasons": list(map(list, EXIT_LABELS.items())),
        },
    )


@router.get(
    "/ui/autorites/{code}/acces",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Who read an authority's children's data",
)
async def access_page(request: Request, settings: AppSettings, code: str) -> Response:
    """ "Qui a consulté les données de nos enfants" : the reads of an authority's data by
    readers from outside it (``GET /v1/audit?readers=outside``), for its placement service
    (the API decides who may read it; the page only shows what the API answers)."""
    authority = load_authorities().get(code)
    if authority is None:
        return unknown_authority(request, settings, code)
    return render(
        request,
        settings,
        "acces.html",
        title=f"Qui a consulté nos données — {authority.name} ({code})",
        authority=authority,
        page={"code": code, "name": authority.name},
    )


@router.get(
    "/ui/autorites/{code}/habilitations",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="The habilitations of an authority (its administrators)",
)
async def habilitations_page(request: Request, settings: AppSettings, code: str) -> Response:
    """Grant and revoke an authority's habilitations; the page calls
    ``/v1/authorities/{code}/habilitations`` with the user's token, which decides."""
    authority = load_authorities().get(code)
    if authority is None:
        return unknown_authority(request, settings, code)
    return render(
        request,
        settings,
        "habilitations.html",
        title=f"Habilitations — {authority.name}",
        page={
            "code": code,
            "name": authority.name,
            "functions": [
                {"name": name, "label": f.label}
                for name, f in FUNCTIONS.items()
                if name != "platform_operator"
            ],
        },
    )


@router.get("/ui/departements", include_in_schema=False)
async def departments_page() -> RedirectResponse:
    """The former department chooser: dashboards are the authorities' now."""
    return RedirectResponse("/ui/autorites", status_code=307)


@router.get(
    "/ui/departements/{code}",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="A department's dashboard: its authority's, or a choice between two",
)
async def department_page(request: Request, settings: AppSettings, code: str) -> Response:
    """A department with one competent authority leads to its dashboard (``38`` → ``38``,
    ``2A`` → ``20R``, ``67`` → ``6AE``); 69 has two, the Métropole de Lyon and the Département
    du Rhône, and the page asks which rather than guess. An authority's code (``69M``) leads
    to its dashboard too (links of earlier versions)."""
    department = load_departments().get(code)
    if department is None and code in load_authorities():
        return RedirectResponse(f"/ui/autorites/{code}", status_code=307)
    if department is None:
        return render(
            request,
            settings,
            "introuvable.html",
            status_code=404,
            title="Département inconnu",
            message=f"Aucun département ne porte le code « {code} ».",
        )
    codes = authorities_of_department(code)
    if len(codes) == 1:
        return RedirectResponse(f"/ui/autorites/{codes[0]}", status_code=307)
    authorities = load_authorities()
    # The Métropole first, as a reader of 69 expects it.
    ordered = sorted(codes, key=lambda c: (authorities[c].kind == "departement", c))
    choices = []
    for c in ordered:
        communes = communes_of_authority(c)
        largest = sorted(communes, key=lambda x: -x.population)[:3]
        choices.append(
            {
                "code": c,
                "name": authorities[c].name,
                "communes": len(communes),
                "largest": [x.name for x in largest],
            }
        )
    return render(
        request,
        settings,
        "departement-choix.html",
        title=f"{department.name} ({code})",
        department=department,
        choices=choices,
    )


def _markers() -> list[dict[str, object]]:
    """Authorities drawn as a marker on the national map, apart from their department's
    shape: those that share a department and are not the departmental council (the
    Métropole de Lyon), at their most populous commune."""
    markers: list[dict[str, object]] = []
    for a in load_authorities().values():
        shares = any(len(authorities_of_department(d)) > 1 for d in a.departments)
        communes = communes_of_authority(a.code)
        if not shares or a.kind == "departement" or not communes:
            continue
        centre = max(communes, key=lambda c: c.population)
        markers.append(
            {
                "code": a.code,
                "name": a.name,
                "label": centre.name,
                "department": a.departments[0],
                "lon": centre.lon,
                "lat": centre.lat,
            }
        )
    return markers


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
        page={
            "departments": _departments(),
            "authorities": [
                {"code": a.code, "name": a.name, "kind": a.kind, "departments": list(a.departments)}
                for a in load_authorities().values()
            ],
            "markers": _markers(),
            "refusal_reasons": list(map(list, REFUSAL_LABELS.items())),
            "situations": list(map(list, WAITING_SITUATION_LABELS.items())),
        },
    )


@router.get(
    "/ui/declarer", response_class=HTMLResponse, include_in_schema=False, summary="Declaration page"
)
async def declaration_page(request: Request, settings: AppSettings) -> Response:
    """The declaration page; the authorities' names let a carer read who issued their
    agrément and who employs them (the API answers codes)."""
    return render(
        request,
        settings,
        "declarer.html",
        title="Déclarer mes places",
        page={
            "authorities": {a["code"]: a["name"] for a in _authorities()},
            "refusal_reasons": list(map(list, REFUSAL_LABELS.items())),
        },
    )
