"""The interactive API documentation, ``/docs`` (Swagger UI) and ``/redoc``, from a packaged
copy of their assets and under a Content-Security-Policy (issue #14).

FastAPI's defaults load Swagger UI, Redoc and fonts from public CDNs: broken where there is no
internet, and outside any policy. Here the scripts and the stylesheet come from the PyPI
package ``fastapi-offline`` (pinned in ``requirements.lock``, installed by ``scripts/setup``:
nothing is downloaded at run time), served at ``/docs/assets/``; the pages are still
FastAPI's own (``get_swagger_ui_html`` / ``get_redoc_html``) pointed at those files, without
Google fonts, with Swagger UI's online validator switched off.

Each page is sent with a policy that admits this origin only. Swagger UI's page starts it
with one inline script: the policy admits exactly that script by its SHA-256 (computed from
the page as built, so a FastAPI upgrade that changes it changes the hash with it). Redoc
writes its styles at run time (styled-components) and runs its search in a ``blob:`` worker,
so ``/redoc`` also admits inline styles and ``blob:`` workers — never a script from
elsewhere.
"""

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
"""``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png``."""

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.S)

_COMMON = (
    "default-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _hashes(pattern: re.Pattern[str], html: str) -> list[str]:
    """``'sha256-…'`` sources for each inline block of ``html`` the pattern finds."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in pattern.findall(html)
    ]


def _sources(*sources: str) -> str:
    return " ".join(sources)


def swagger_page(openapi_url: str, title: str) -> tuple[str, str]:
    """Swagger UI's page and its policy."""
    body = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} — Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    html = bytes(body).decode()
    scripts = _sources("'self'", *_hashes(_INLINE_SCRIPT, html))
    styles = _sources("'self'", *_hashes(_INLINE_STYLE, html))
    return html, f"{_COMMON}; script-src {scripts}; style-src {styles}"


def redoc_page(openapi_url: str, title: str) -> tuple[str, str]:
    """Redoc's page and its policy."""
    body = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{title} — ReDoc",
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    ).body
    html = bytes(body).decode()
    scripts = _sources("'self'", *_hashes(_INLINE_SCRIPT, html))
    return html, (
        f"{_COMMON}; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "worker-src 'self' blob:"
    )


def _respond(page: tuple[str, str]) -> HTMLResponse:
    html, csp = page
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": csp,
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets; the app is made with ``docs_url`` and
    ``redoc_url`` set to None so that FastAPI's CDN pages never exist."""
    openapi_url = app.openapi_url or "/openapi.json"
    swagger = swagger_page(openapi_url, app.title)
    redoc = redoc_page(openapi_url, app.title)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _respond(swagger)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return _respond(redoc)

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
