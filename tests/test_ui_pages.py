"""The pages' server side: templates render, static files and the committed map are served,
the local sign-in exists only without an OIDC issuer, and the pages' own small endpoints keep
to their scope. In-process app, real database (the browser tests drive the pages)."""

import html
import json
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth import decode_token
from api.settings import get_settings
from api.ui import routes as ui
from tests.support.factories import bearer, make_carer, make_structure

MAP = Path(ui.__file__).parent / "static" / "france-departments.svg"


@pytest.mark.parametrize(
    "path",
    [
        "/ui/connexion",
        "/ui/national",
        "/ui/declarer",
        "/ui/autorites",
        "/ui/autorites/69M",
        "/ui/autorites/20R",
        "/ui/autorites/974",
        "/ui/departements/69",
    ],
)
async def test_pages_render_in_french_with_a_strict_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    # Nothing from elsewhere: every script and stylesheet is ours.
    for url in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        assert url.startswith(("/", "#", "data:")), url


async def test_unknown_department_page_is_a_french_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/ui/departements/99")
    assert r.status_code == 404
    assert "Aucun département" in r.text
    r = await client.get("/ui/autorites/99X")
    assert r.status_code == 404
    assert "Aucune autorité compétente" in r.text


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/ui/departements", "/ui/autorites"),
        ("/ui/departements/38", "/ui/autorites/38"),
        ("/ui/departements/2A", "/ui/autorites/20R"),
        ("/ui/departements/68", "/ui/autorites/6AE"),
        ("/ui/departements/69M", "/ui/autorites/69M"),  # links of earlier versions
        ("/ui/autorites/2B", "/ui/departements/2B"),  # a department's code, not an authority's
        ("/ui/autorites/69", "/ui/departements/69"),
    ],
)
async def test_a_department_leads_to_its_authority(
    client: httpx.AsyncClient, path: str, location: str
) -> None:
    r = await client.get(path, follow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["location"] == location


async def test_department_69_asks_which_authority(client: httpx.AsyncClient) -> None:
    """Two authorities share the Rhône: the page offers both rather than guess."""
    r = await client.get("/ui/departements/69")
    assert r.status_code == 200
    links = re.findall(r'<a class="bouton" href="(/ui/autorites/[^"]+)">([^<]+)', r.text)
    assert [(href, name.strip()) for href, name in links] == [
        ("/ui/autorites/69M", "Métropole de Lyon"),
        ("/ui/autorites/69D", "Département du Rhône"),
    ]
    assert "Lyon" in r.text and "Villefranche-sur-Saône" in r.text


async def test_an_authority_dashboard_carries_its_territory(client: httpx.AsyncClient) -> None:
    """The page data the dashboard's script reads: the authority, its departments, its
    neighbours, the authorities it shares a department with, and its communes to search from."""
    pages = {}
    for code in ("69M", "20R", "38"):
        r = await client.get(f"/ui/autorites/{code}")
        assert r.status_code == 200
        data = re.search(
            r'<script type="application/json" id="donnees-page">(.*?)</script>', r.text
        )
        assert data is not None
        pages[code] = (json.loads(html.unescape(data.group(1))), r.text)
    lyon, text = pages["69M"]
    assert lyon["code"] == "69M" and lyon["name"] == "Métropole de Lyon"
    assert [d["code"] for d in lyon["departments"]] == ["69"]
    assert lyon["partners"] == [{"code": "69D", "name": "Département du Rhône"}]
    assert lyon["origin"] == "69123" and "01" in lyon["neighbours"]
    assert 'Métropole de Lyon <span class="code">(69M)</span>' in text
    assert '<option value="69123">Lyon</option>' in text
    assert '<option value="69264">' not in text  # Villefranche: the Rhône's
    corse, _ = pages["20R"]
    assert [d["code"] for d in corse["departments"]] == ["2A", "2B"]
    assert corse["partners"] == [] and not {"2A", "2B"} & set(corse["neighbours"])
    isere, _ = pages["38"]
    assert isere["partners"] == [] and isere["departments"] == [{"code": "38", "name": "Isère"}]


async def test_static_files_and_the_committed_map(client: httpx.AsyncClient) -> None:
    for name in ("common.js", "live.js", "map.js", "places.css", "france-departments.svg"):
        r = await client.get(f"/ui/static/{name}")
        assert r.status_code == 200, name
    svg = MAP.read_text(encoding="utf-8")
    codes = re.findall(r'<path id="dep-([0-9AB]+)" data-code="\1"', svg)
    assert len(codes) == 101 and {"2A", "2B", "971", "976", "75"} <= set(codes)
    assert "CC BY 4.0" in svg and "Cazanave" in svg
    assert "data-projection=" in svg
    page = (await client.get("/ui/national")).text
    assert 'id="dep-69"' in page  # inlined, so the page can colour it


async def test_dev_token_signs_in_every_role(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    s = await make_structure(pool)
    carer = await make_carer(pool)
    cases = [
        ({"role": "structure", "finess": s["finess"]}, "finess", s["finess"]),
        ({"role": "carer", "carer_id": str(carer)}, "carer_id", str(carer)),
        ({"role": "department", "authority": "69M"}, "authority", "69M"),
        ({"role": "national"}, None, None),
        ({"role": "admin"}, None, None),
    ]
    for body, claim, value in cases:
        r = await client.post("/ui/dev-token", json=body)
        assert r.status_code == 200, r.text
        principal = decode_token(r.json()["access_token"], get_settings())
        assert principal.role == body["role"]
        if claim:
            assert getattr(principal, claim) == value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "structure", "finess": "690000019"}, "finess"),  # bad Luhn key
        ({"role": "structure"}, "finess"),
        ({"role": "department", "authority": "69"}, "authority"),  # a department, not an authority
        ({"role": "department"}, "authority"),
        ({"role": "carer", "carer_id": str(uuid.uuid4())}, "carer_id"),
        ({"role": "king"}, "role"),
    ],
)
async def test_dev_token_refuses_unknown_scopes(
    client: httpx.AsyncClient, body: dict, field: str
) -> None:
    r = await client.post("/ui/dev-token", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


async def test_production_has_no_dev_sign_in_but_an_oidc_link(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "jwt_jwks_url", "https://idp.example/jwks")
    monkeypatch.setattr(
        get_settings(), "oidc_authorize_url", "https://idp.example/authorize?client_id=places"
    )
    r = await client.post("/ui/dev-token", json={"role": "admin"})
    assert r.status_code == 404
    page = (await client.get("/ui/connexion")).text
    assert "Mode local" not in page
    assert 'href="https://idp.example/authorize?client_id=places"' in page


async def test_declarant_is_the_callers_own(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    s = await make_structure(pool, units=[{"name": "A"}, {"name": "B"}])
    r = await client.get("/ui/api/moi", headers=bearer("structure", finess=s["finess"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "structure" and body["structure"]["finess"] == s["finess"]
    assert sorted(u["name"] for u in body["structure"]["units"]) == ["A", "B"]
    assert body["commune_name"] == "Lyon"

    carer = await make_carer(pool)
    r = await client.get("/ui/api/moi", headers=bearer("carer", carer_id=str(carer)))
    assert r.status_code == 200 and r.json()["carer"]["id"] == str(carer)
    assert "location" not in r.json()["carer"]

    r = await client.get(
        f"/ui/api/moi?carer={carer}", headers=bearer("department", authority="69M")
    )
    assert r.status_code == 200
    r = await client.get(f"/ui/api/moi?carer={carer}", headers=bearer("department", authority="38"))
    assert r.status_code == 403
    # A structure cannot look at another one by naming it.
    other = await make_structure(pool)
    r = await client.get(
        f"/ui/api/moi?finess={other['finess']}", headers=bearer("structure", finess=s["finess"])
    )
    assert r.json()["structure"]["finess"] == s["finess"]
    assert (await client.get("/ui/api/moi", headers=bearer("national"))).status_code == 403
    assert (await client.get("/ui/api/moi", headers=bearer("admin"))).status_code == 422
    r = await client.get(f"/ui/api/moi?finess={other['finess']}", headers=bearer("admin"))
    assert r.status_code == 200 and r.json()["structure"]["finess"] == other["finess"]
    assert (await client.get("/ui/api/moi")).status_code == 401


async def test_communes_for_the_maps(client: httpx.AsyncClient) -> None:
    r = await client.get("/ui/geo/communes?department=69")
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) > 200 and all(i["department"] == "69" for i in items)
    r = await client.get("/ui/geo/communes?authority=69M")
    items = r.json()["items"]
    assert len(items) == 58 and all(i["authority"] == "69M" for i in items)
    assert "Lyon" in {i["name"] for i in items}
    assert "Villefranche-sur-Saône" not in {i["name"] for i in items}
    r = await client.get("/ui/geo/communes?insee=69123,38185,00000")
    assert {i["name"] for i in r.json()["items"]} == {"Lyon", "Grenoble"}
    assert (await client.get("/ui/geo/communes")).status_code == 422
