"""Rendering a page: its template, versioned static URLs, the inlined map, strict headers.

Every page is served with a Content-Security-Policy that admits only this origin (and the
identity provider's token endpoint, which the sign-in page calls for PKCE), because the
pages hold a bearer token in ``sessionStorage`` and must run no one else's script.
"""

import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from api.settings import Settings
from api.ui.assets import STATIC, dsfr_url, module_imports, static_url
from api.ui.signin import local_issuer, oidc_page

HERE = Path(__file__).resolve().parent
MAP_FILE = STATIC / "france-departments.svg"

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@cache
def france_map() -> str:
    """The committed SVG (built by ``api.ui.build_assets``), inlined so pages can colour it."""
    return MAP_FILE.read_text(encoding="utf-8")


def module_script(name: str) -> Markup:
    """The page's module ``name`` with a ``modulepreload`` link for each module it imports,
    so that the whole graph is fetched at once (see ``assets.module_imports``)."""
    preload = Markup('<link rel="modulepreload" href="{}">')
    script = Markup('<script type="module" src="{}"></script>')
    return Markup("").join(
        [*(preload.format(url) for url in module_imports(name)), script.format(static_url(name))]
    )


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a configured URL, for the page's connect-src."""
    m = re.match(r"^(https?://[A-Za-z0-9.\-]+(?::\d{1,5})?)(?:/|$)", url or "")
    return m.group(1) if m else None


def _csp(request: Request, settings: Settings) -> str:
    host = request.headers.get("host", request.url.netloc)
    if not _HOST.fullmatch(host):
        host = "localhost"  # a Host header must never write policy directives
    # The page exchanges its PKCE code at the token endpoint.
    token = _origin(oidc_page(settings)["oidc_token_url"])
    connect = f"'self' ws://{host} wss://{host}" + (f" {token}" if token else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def render(
    request: Request,
    settings: Settings,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """The page ``template`` with ``context``; ``page`` entries reach the page's script."""
    page = {
        "stale_after_days": settings.stale_after_days,
        "unexecuted_after_days": settings.unexecuted_after_days,
        "ws_ping_seconds": settings.ws_ping_seconds,
        **context.pop("page", {}),
    }
    html = _env.get_template(template).render(
        static_url=static_url,
        module_script=module_script,
        dsfr_url=dsfr_url(),
        page=page,
        local_issuer=local_issuer(settings),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": _csp(request, settings),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )
