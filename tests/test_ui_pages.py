"""The pages' server side: templates render, static files and the committed map are served,
the local sign-in exists only without an OIDC issuer, and the pages' own small endpoints keep
to their scope. In-process app, real database (the browser tests drive the pages)."""

import html
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import decode_token
from api.main import create_app
from api.settings import Settings, get_settings
from api.ui import routes as ui
from geo.finess import is_valid_finess
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
        "/ui/autorites/69M/acces",
        "/ui/departements/69",
        "/ui/autorites/69M/habilitations",
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


async def test_the_dsfr_and_our_files_are_served_under_immutable_names(
    client: httpx.AsyncClient,
) -> None:
    """The State design system from its npm package and our scripts, each under a content hash
    in its path, cached for a year; the stylesheet points only at files the app serves (three
    Marianne weights, the icons it uses); everything text is gzipped."""
    page = (await client.get("/ui/connexion", headers={"Accept-Encoding": "gzip"})).text
    dsfr = re.search(r'href="(/ui/dsfr/[0-9a-f]{12}/dsfr\.css)"', page)
    assert dsfr, "the DSFR stylesheet is linked (npm ci in api/ui/dsfr)"
    css = await client.get(dsfr.group(1), headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert css.headers["content-encoding"] == "gzip"
    assert ".fr-header" in css.text and ".fr-btn" in css.text and ".fr-pagination" in css.text
    refs = set(re.findall(r"url\((/ui/dsfr/[^)]+)\)", css.text))
    fonts = {r.rsplit("/", 1)[1] for r in refs if "/fonts/" in r}
    assert fonts == {"Marianne-Regular.woff2", "Marianne-Medium.woff2", "Marianne-Bold.woff2"}
    for ref in refs:
        r = await client.get(ref)
        assert r.status_code == 200, ref
        assert r.headers["cache-control"].endswith("immutable")
    assert (await client.get(dsfr.group(1).replace("dsfr.css", "package.json"))).status_code == 404
    script = re.search(r'src="(/ui/v/[0-9a-f]{10}/connexion\.js)"', page)
    assert script
    js = await client.get(script.group(1), headers={"Accept-Encoding": "gzip"})
    assert js.headers["cache-control"].endswith("immutable")
    assert js.headers["content-encoding"] == "gzip"
    # Its imports are versioned too, so a change in common.js changes this file's URL.
    common = re.search(r'from "(/ui/v/[0-9a-f]{10}/common\.js)"', js.text)
    assert common and (await client.get(common.group(1))).status_code == 200
    assert (await client.get("/ui/v/0000000000/connexion.js")).status_code == 404
    communes = await client.get(
        "/ui/geo/communes?authority=69M", headers={"Accept-Encoding": "gzip"}
    )
    assert communes.status_code == 200 and communes.headers["content-encoding"] == "gzip"


async def test_root_leads_to_sign_in_and_the_footer_to_the_mandatory_pages(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/connexion"
    page = (await client.get("/ui/connexion")).text
    for href, text in [
        ("/ui/accessibilite", "Accessibilité : non conforme"),
        ("/ui/mentions-legales", "Mentions légales"),
        ("/ui/donnees-personnelles", "Données personnelles"),
    ]:
        assert f'href="{href}">{text}</a>' in page
        assert (await client.get(href)).status_code == 200
    statement = (await client.get("/ui/accessibilite")).text
    assert "non conforme" in statement and "Défenseur des droits" in statement
    assert "RGAA" in statement and "Non-conformités connues" in statement
    assert "République<br>française" in page  # the Marianne block


async def test_unknown_department_page_is_a_french_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/ui/departements/99")
    assert r.status_code == 404
    assert "Aucun département" in r.text
    r = await client.get("/ui/autorites/99X")
    assert r.status_code == 404
    assert "Aucune autorité compétente" in r.text
    r = await client.get("/ui/autorites/99X/habilitations")
    assert r.status_code == 404


async def test_the_habilitations_page_offers_the_functions_an_authority_grants(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/ui/autorites/69M/habilitations")).text
    assert "Habilitations — Métropole de Lyon (69M)" in page
    assert 'value="orientation_officer"' in page and "chargé·e d&#39;orientation" in page
    assert 'value="platform_operator"' not in page  # granted from the command line only
    assert 'for="h-sub"' in page and 'id="table-habilitations"' in page


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
    links = re.findall(r'<a class="fr-btn bouton" href="(/ui/autorites/[^"]+)">([^<]+)', r.text)
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


async def test_the_dashboard_s_first_screen_starts_before_its_scripts(
    client: httpx.AsyncClient,
) -> None:
    """What makes the dashboard usable in < 2 s on a slow phone (loadtests/bench_pages.py):
    amorce.js, an async classic script in the head, starts the first screen's reads (with
    the permission each needs), every module the page imports is announced by modulepreload,
    and the map is not in the HTML but behind an immutable URL the page fetches afterwards."""
    text = (await client.get("/ui/autorites/69M")).text
    amorce = re.search(r"<script async [^>]*/amorce\.js\" data-urls='([^']*)'", text)
    assert amorce is not None
    assert json.loads(html.unescape(amorce.group(1))) == {
        "/v1/me": None,
        "/v1/stats/authorities?authority=69M": None,
        "/v1/requests?authority=69M&status=waiting&limit=500": "placement",
        "/v1/requests?authority=69M&status=held&limit=500": "placement",
    }
    assert text.index("amorce.js") < text.index('rel="stylesheet"')
    preloaded = re.findall(r'<link rel="modulepreload" href="/ui/v/[0-9a-f]+/([a-z]+\.js)">', text)
    assert sorted(preloaded) == ["agrements.js", "common.js", "live.js", "map.js"]
    assert 'id="dep-69"' not in text
    carte = re.search(r'data-carte="(/ui/v/[0-9a-f]+/france-departments\.svg)"', text)
    assert carte is not None
    r = await client.get(carte.group(1))
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert "immutable" in r.headers["cache-control"] and 'id="dep-69"' in r.text


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


async def test_dev_token_signs_in_every_role_but_the_administrative_ones(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    s = await make_structure(pool)
    carer = await make_carer(pool)
    cases = [
        ({"role": "structure", "finess": s["finess"]}, "finess", s["finess"]),
        ({"role": "carer", "carer_id": str(carer)}, "carer_id", str(carer)),
        ({"role": "department", "authority": "69M"}, "authority", "69M"),
        ({"role": "national"}, None, None),
    ]
    # A carer signs in by their agrément number, what they know (not the service's UUID).
    number = await pool.fetchval("SELECT agrement_number FROM foster_carers WHERE id = $1", carer)
    cases.append(({"role": "carer", "agrement": f" {number} "}, "carer_id", str(carer)))
    for body, claim, value in cases:
        r = await client.post("/ui/dev-token", json=body)
        assert r.status_code == 200, r.text
        principal = decode_token(r.json()["access_token"], get_settings())
        assert principal.role == body["role"]
        if claim:
            assert getattr(principal, claim) == value


async def test_the_sign_in_hint_s_example_finess_is_a_valid_one(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/ui/connexion")).text
    example = re.search(r"par exemple ([0-9AB]{9})", page)
    assert example and is_valid_finess(example.group(1))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "structure", "finess": "690000019"}, "finess"),  # bad Luhn key
        ({"role": "structure"}, "finess"),
        ({"role": "department", "authority": "69"}, "authority"),  # a department, not an authority
        ({"role": "department"}, "authority"),
        ({"role": "carer", "carer_id": str(uuid.uuid4())}, "carer_id"),
        ({"role": "carer", "agrement": "AG-NOBODY"}, "agrement"),
        ({"role": "king"}, "role"),
    ],
)
async def test_dev_token_refuses_unknown_scopes(
    client: httpx.AsyncClient, body: dict, field: str
) -> None:
    r = await client.post("/ui/dev-token", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"role": "operator"},
        {"role": "authority_admin", "authority": "69M"},
        {"role": "admin"},  # the former role, gone
    ],
)
async def test_dev_token_never_mints_an_operator_or_an_authority_admin(
    client: httpx.AsyncClient, body: dict
) -> None:
    """They grant habilitations (and an authority administrator reads child records): the
    dev sign-in refuses them (``places token`` makes them)."""
    r = await client.post("/ui/dev-token", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "role"
    assert "access_token" not in r.text
    page = (await client.get("/ui/connexion")).text
    assert 'value="admin"' not in page and 'value="national"' in page
    assert 'value="operator"' not in page and 'value="authority_admin"' not in page


async def test_production_has_no_dev_sign_in_but_an_oidc_link(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "dev_signin", False)
    monkeypatch.setattr(
        get_settings(), "oidc_authorize_url", "https://idp.example/authorize?client_id=places"
    )
    for body in ({"role": "national"}, {"role": "admin"}, {"role": "king"}, {}):
        r = await client.post("/ui/dev-token", json=body)
        assert r.status_code == 404, (body, r.text)
    page = (await client.get("/ui/connexion")).text
    assert "Mode local" not in page and 'id="form-connexion"' not in page
    assert 'href="https://idp.example/authorize?client_id=places"' in page


async def test_dev_sign_in_is_off_by_default(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only PLACES_DEV_SIGNIN turns it on: not the absence of PLACES_JWT_JWKS_URL."""
    monkeypatch.delenv("PLACES_DEV_SIGNIN")
    assert Settings().dev_signin is False
    monkeypatch.setattr(get_settings(), "dev_signin", False)
    assert get_settings().jwt_jwks_url is None
    r = await client.post("/ui/dev-token", json={"role": "structure", "finess": "690000018"})
    assert r.status_code == 404
    page = (await client.get("/ui/connexion")).text
    assert "Mode local" not in page and 'id="form-connexion"' not in page


async def _post_from(
    app: Any, peer: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(peer, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
        return await c.post("/ui/dev-token", json=body, headers=headers or {})


async def test_dev_sign_in_answers_loopback_clients_only(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"role": "national"}
    for peer in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        r = await _post_from(app, peer, body)
        assert r.status_code == 200, (peer, r.text)
    for peer in ("192.0.2.10", "10.0.0.1", "2001:db8::1", "testclient"):
        r = await _post_from(app, peer, body)
        assert r.status_code == 403, (peer, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["title"] == "Forbidden" and "access_token" not in r.text
        # Whatever the body: a remote client learns nothing about the scopes.
        assert (await _post_from(app, peer, {"role": "king"})).status_code == 403
    # X-Forwarded-For is a claim of the client's unless the peer is a trusted proxy.
    r = await _post_from(app, "192.0.2.10", body, {"X-Forwarded-For": "127.0.0.1"})
    assert r.status_code == 403
    monkeypatch.setattr(get_settings(), "trusted_proxies", "10.1.0.0/16, 192.0.2.1")
    r = await _post_from(app, "10.1.2.3", body, {"X-Forwarded-For": "127.0.0.1"})
    assert r.status_code == 200, r.text
    r = await _post_from(app, "192.0.2.1", body, {"X-Forwarded-For": "127.0.0.1, 198.51.100.7"})
    assert r.status_code == 403, "the proxy appended the real client; a forged hop is ignored"
    r = await _post_from(app, "10.1.2.3", body, {"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 403
    r = await _post_from(app, "10.1.2.3", body, {"X-Forwarded-For": "not-an-address"})
    assert r.status_code == 403
    # A proxy in front of a local client without the header: the proxy is the client.
    r = await _post_from(app, "10.1.2.3", body)
    assert r.status_code == 403
    # The test client's default peer (127.0.0.1) through a proxy not trusted: its own address.
    r = await _post_from(app, "127.0.0.1", body, {"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200


@pytest.mark.pure
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"jwt_jwks_url": "https://idp.example/jwks"}, "PLACES_JWT_JWKS_URL"),
        ({"jwt_issuer": "https://idp.example"}, "PLACES_JWT_ISSUER"),
        ({"oidc_authorize_url": "https://idp.example/authorize"}, "PLACES_OIDC_AUTHORIZE_URL"),
        ({"oidc_token_url": "https://idp.example/token"}, "PLACES_OIDC_TOKEN_URL"),
        ({"oidc_client_id": "places"}, "PLACES_OIDC_CLIENT_ID"),
    ],
)
def test_production_refuses_to_start_with_the_dev_sign_in(env: dict[str, str], named: str) -> None:
    settings = Settings(**env, dev_signin=True, local_roles=False)
    with pytest.raises(ValueError, match="PLACES_DEV_SIGNIN") as raised:
        create_app(settings)
    assert named in str(raised.value)
    settings = Settings(**env, dev_signin=False, local_roles=True)
    with pytest.raises(ValueError, match="PLACES_LOCAL_ROLES") as raised:
        create_app(settings)
    assert named in str(raised.value)
    create_app(Settings(**env, dev_signin=False, local_roles=False))  # production starts
    create_app(Settings(dev_signin=True, local_roles=True))  # and so does the local default


@pytest.mark.pure
def test_places_run_refuses_to_start_with_the_dev_sign_in() -> None:
    env = {**os.environ, "PLACES_DEV_SIGNIN": "true", "PLACES_OIDC_CLIENT_ID": "places"}
    code = "from api.cli import app; app(['run', '--port', '1'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "PLACES_DEV_SIGNIN" in done.stderr and "PLACES_OIDC_CLIENT_ID" in done.stderr


@pytest.mark.pure
def test_trusted_proxies_must_parse() -> None:
    with pytest.raises(ValueError, match="PLACES_TRUSTED_PROXIES"):
        create_app(Settings(trusted_proxies="10.0.0.0/8, proxy.local"))


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
    assert (await client.get("/ui/api/moi", headers=bearer("operator"))).status_code == 422
    r = await client.get(f"/ui/api/moi?finess={other['finess']}", headers=bearer("operator"))
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
