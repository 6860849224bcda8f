"""The pages' static assets under immutable names: the State design system (DSFR) and ours.

Why the DSFR is served by the app, from the npm package ``@gouvfr/dsfr`` pinned with its
integrity hash in ``api/ui/dsfr/package-lock.json`` (installed by ``scripts/setup`` with
``npm ci``): the pages load nothing from a CDN (their CSP admits only this origin), and the
package is the State's own build. Only what the pages use is sent: the core (grid,
typography, colours), the components listed in ``COMPONENTS`` in one stylesheet, three
Marianne weights in WOFF2, and the icons those stylesheets point at. The Marianne font is
reserved to State sites; Places is a State service (docs/architecture.md).

Every URL carries a content hash in its path (``/ui/v/<hash>/<name>``), so browsers may keep
the file for a year (``immutable``) and see a new one at once after a deployment.
"""

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
DSFR = HERE / "dsfr" / "node_modules" / "@gouvfr" / "dsfr" / "dist"
"""Where ``npm ci --prefix api/ui/dsfr`` puts the package's build."""

COMPONENTS = (
    "skiplink",
    "logo",
    "link",
    "button",
    "navigation",
    "modal",
    "header",
    "footer",
    "form",
    "input",
    "select",
    "checkbox",
    "alert",
    "badge",
    "table",
    "tab",
    "pagination",
    "notice",
)
"""The DSFR components the templates use, in the package's own order of dependence."""

FONTS = ("Marianne-Regular", "Marianne-Medium", "Marianne-Bold")
"""Three weights (400, 500, 700): the others (light, italics, Spectral) are not used and
their ``@font-face`` rules are dropped, so the browser never asks for them."""

IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Bundle:
    """The DSFR as served: one stylesheet and the files it points at, under one version."""

    version: str
    css: bytes
    files: dict[str, Path]
    """``fonts/Marianne-Regular.woff2``, ``icons/system/menu-fill.svg``… → the package's file."""


_URL = re.compile(r"url\((?:\.\./)+((?:fonts|icons)/[A-Za-z0-9_\-/.]+)\)")
_FONT_FACE = re.compile(r"@font-face\{[^}]*\}")


def _font_face(rule: str) -> str:
    """Keep a ``@font-face`` of ``FONTS`` with its WOFF2 source only; drop the others."""
    for font in FONTS:
        if f"fonts/{font}.woff2" in rule:
            return re.sub(r",url\([^)]*\.woff\) format\(\"woff\"\)", "", rule)
    return ""


@cache
def dsfr_bundle() -> Bundle | None:
    """The stylesheet of ``COMPONENTS`` (``None`` when the package is not installed: the
    pages still work, unstyled, and the log says how to install it)."""
    parts = [DSFR / "core" / "core.main.min.css"] + [
        DSFR / "component" / c / f"{c}.main.min.css" for c in COMPONENTS
    ]
    if not all(p.exists() for p in parts):
        log.warning("DSFR missing under %s: run scripts/setup (npm ci in api/ui/dsfr)", DSFR)
        return None
    css = "\n".join(p.read_text(encoding="utf-8") for p in parts)
    css = _FONT_FACE.sub(lambda m: _font_face(m.group(0)), css)
    files = {ref: DSFR / ref for ref in set(_URL.findall(css)) if (DSFR / ref).is_file()}
    digest = hashlib.sha256(css.encode())
    for ref in sorted(files):
        digest.update(files[ref].read_bytes())
    version = digest.hexdigest()[:12]
    css = _URL.sub(lambda m: f"url(/ui/dsfr/{version}/{m.group(1)})", css)
    return Bundle(version, css.encode(), files)


def dsfr_url() -> str | None:
    bundle = dsfr_bundle()
    return f"/ui/dsfr/{bundle.version}/dsfr.css" if bundle else None


_IMPORT = re.compile(r'(from\s+|import\s*\(\s*)"\./([a-z\-]+\.js)"')


@cache
def _served(name: str) -> bytes:
    """Our file ``name`` as served: a module's imports of its siblings (``"./common.js"``)
    point at their own versioned URLs, so that a change in ``common.js`` changes the URL of
    every page script that imports it too (the modules do not import each other in a cycle)."""
    text = (STATIC / name).read_bytes()
    if not name.endswith(".js"):
        return text
    return _IMPORT.sub(
        lambda m: f'{m.group(1)}"{static_url(m.group(2))}"', text.decode("utf-8")
    ).encode("utf-8")


@cache
def _static_version(name: str) -> str:
    return hashlib.sha256(_served(name)).hexdigest()[:10]


def static_url(name: str) -> str:
    """Our own file ``name`` (``static/``) under its content hash."""
    return f"/ui/v/{_static_version(name)}/{name}"


def module_imports(name: str) -> list[str]:
    """The versioned URLs of the modules ``name`` imports, directly or not, in the order
    first met: a page announces them with ``<link rel=modulepreload>`` so that the browser
    fetches them together with the page's own script rather than one level after another
    (each level is a round trip: 150 ms on the slow phone of loadtests/bench_pages.py)."""
    seen: list[str] = []
    todo = [name]
    while todo:
        text = (STATIC / todo.pop(0)).read_text(encoding="utf-8")
        for _, imported in _IMPORT.findall(text):
            if imported not in seen and imported != name:
                seen.append(imported)
                todo.append(imported)
    return [static_url(n) for n in seen]


def _immutable(body: bytes, name: str) -> Response:
    return Response(
        body,
        media_type=TYPES.get(Path(name).suffix, "application/octet-stream"),
        headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/ui/v/{version}/{name}")
async def static_file(version: str, name: str) -> Response:
    """One of our static files; an old version's URL answers 404 rather than new content
    under an old name (which a year-long cache would then keep)."""
    path = STATIC / name
    if "/" in name or not path.is_file() or _static_version(name) != version:
        raise HTTPException(404, "no such asset")
    return _immutable(_served(name), name)


@router.get("/ui/dsfr/{version}/{path:path}")
async def dsfr_file(version: str, path: str) -> Response:
    """The DSFR stylesheet, or one of the fonts and icons it points at (nothing else of the
    package is reachable)."""
    bundle = dsfr_bundle()
    if bundle is None or version != bundle.version:
        raise HTTPException(404, "no such asset")
    if path == "dsfr.css":
        return _immutable(bundle.css, path)
    if path not in bundle.files:
        raise HTTPException(404, "no such asset")
    return _immutable(bundle.files[path].read_bytes(), path)
