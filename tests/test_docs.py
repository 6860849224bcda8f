"""/docs and /redoc from the packaged assets (``fastapi-offline``), under a strict policy:
every script, stylesheet and icon the pages name is served by this origin, the policy names
no other origin, and Swagger UI's one inline script is admitted by its hash (#14). The
pages in a real browser, with no request leaving the origin: tests/test_ui_browser.py."""

import base64
import hashlib
import re

import pytest

from api.docs import ASSETS_DIR

URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
INLINE = re.compile(r"<script>(.*?)</script>", re.S)

pytestmark = pytest.mark.database


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_docs_pages_name_only_their_own_assets(client, path, assets):
    r = await client.get(path)
    assert r.status_code == 200
    html = r.text
    urls = URL.findall(html)
    assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
    assert {u.rsplit("/", 1)[1] for u in urls} == assets
    assert "http://" not in html and "https://" not in html  # no CDN, no Google fonts
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (ASSETS_DIR / url.rsplit("/", 1)[1]).read_bytes()
        assert asset.headers["x-content-type-options"] == "nosniff"
    csp = directives(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    # Nothing but this origin, hashes, data: images and (Redoc) blob: workers.
    for name, sources in csp.items():
        for source in sources:
            assert source.startswith(("'", "data:", "blob:")), (name, source)
    assert "'unsafe-eval'" not in csp["script-src"] and "'unsafe-inline'" not in csp["script-src"]
    # Each inline script of the page, and only those, is admitted by its SHA-256.
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in INLINE.findall(html)
    }
    assert set(csp["script-src"]) == {"'self'"} | hashes
    assert r.headers["cache-control"] == "no-cache"


async def test_swagger_ui_without_the_online_validator(client):
    """Swagger UI would otherwise send the spec's URL to validator.swagger.io for a badge."""
    r = await client.get("/docs")
    assert '"validatorUrl": null' in r.text
    assert "url: '/openapi.json'" in r.text


async def test_the_assets_are_packaged(client):
    """Installed with the runtime dependencies: nothing is fetched when the pages are served."""
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert (ASSETS_DIR / name).stat().st_size > 100_000, name
    r = await client.get("/docs/assets/missing.js")
    assert r.status_code == 404
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert "/docs" not in r.json()["paths"] and "/redoc" not in r.json()["paths"]
