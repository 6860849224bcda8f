"""The pages' server side: templates render, static files and the committed map are served,
the local sign-in exists only without an OIDC issuer, and the pages' own small endpoints keep
to their scope. In-process app, real database (the browser tests drive the pages)."""

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
    ["/ui/connexion", "/ui/national", "/ui/declarer", "/ui/departements", "/ui/departements/69"],
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
    r = await client.get("/ui/geo/communes?insee=69123,38185,00000")
    assert {i["name"] for i in r.json()["items"]} == {"Lyon", "Grenoble"}
    assert (await client.get("/ui/geo/communes")).status_code == 422
