"""Measure what placing carers at their public point (their commune's) costs matching.

Search measures a carer's distance from their commune's point, never their home (issue #15).
This prints, on the seeded database of ``PLACES_DATABASE_URL``, the distribution of
|distance(origin, home) − distance(origin, public point)| over 4,000 carers, for origins drawn
among the communes within 50 km of the carer (the searches that could propose them), split
by the precision of the commune's point; and the displacement |home − public point|, which
bounds that error for any origin. The seed puts homes within 3 km of the commune's point, so
for communes placed at their arrondissement's centroid it understates reality: the second
table is a proxy from the referential itself — how far communes placed by GeoNames are from
the nearest arrondissement centroid of their department. Prints only.

    .venv-dev/bin/python -m loadtests.measure_carer_points
"""

import asyncio
import csv
from pathlib import Path

import asyncpg
import numpy as np

from api.settings import get_settings
from loadtests.common import ensure_settings_database

ERRORS_SQL = """
WITH sample AS (
    SELECT * FROM foster_carers ORDER BY md5(id::text) LIMIT 4000
), o AS (
    SELECT c.id, cm.precision, ST_Distance(c.location, c.public_location) AS shift,
           ST_Distance(oc.location, c.location) AS to_home,
           ST_Distance(oc.location, c.public_location) AS to_public
      FROM sample c
      JOIN communes cm ON cm.insee = c.commune
      CROSS JOIN LATERAL (
          SELECT location FROM communes x
           WHERE ST_DWithin(x.location, c.location, 50000)
           ORDER BY md5(x.insee || c.id::text) LIMIT 5
      ) oc
)
SELECT precision, shift, abs(to_home - to_public) AS error,
       abs(round(to_home / 1000) - round(to_public / 1000)) AS shown_km
  FROM o
"""


def _pct(values: np.ndarray) -> str:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:6.2f}  p90 {p90:6.2f}  p99 {p99:6.2f}  max {values.max():6.2f}"


def _haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def referential_proxy() -> None:
    """Distance from each GeoNames-placed commune to the nearest arrondissement centroid of
    its department: what a centroid-placed commune's point is likely off by."""
    path = Path(__file__).resolve().parent.parent / "geo" / "data" / "communes.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    centroids: dict[str, set[tuple[float, float]]] = {}
    for r in rows:
        if r["precision"] == "arrondissement_centroid":
            centroids.setdefault(r["department"], set()).add((float(r["lat"]), float(r["lon"])))
    found = []
    for r in rows:
        points = centroids.get(r["department"])
        if r["precision"] != "geonames" or not points:
            continue
        arr = np.array(sorted(points))
        d = _haversine_km(float(r["lat"]), float(r["lon"]), arr[:, 0], arr[:, 1])
        found.append(float(d.min()))
    shared = sum(r["precision"] == "arrondissement_centroid" for r in rows)
    print(
        f"referential: {shared:,} of {len(rows):,} communes at their arrondissement's centroid"
        f" ({sum(len(v) for v in centroids.values())} distinct points)"
    )
    print(
        "  proxy of their error (GeoNames communes to the nearest centroid of their"
        f" department), km: {_pct(np.array(found))}"
    )


async def main() -> None:
    await asyncio.to_thread(ensure_settings_database)
    conn = await asyncpg.connect(get_settings().owner_dsn)
    try:
        rows = await conn.fetch(ERRORS_SQL)
    finally:
        await conn.close()
    print(f"seeded carers (a sample): {len(rows) // 5:,}, 5 origins each within 50 km of the home")
    for precision in [*sorted({r["precision"] for r in rows}), "all"]:
        sel = [r for r in rows if precision in ("all", r["precision"])]
        shift = np.array([r["shift"] for r in sel]) / 1000
        error = np.array([r["error"] for r in sel]) / 1000
        shown = np.array([float(r["shown_km"]) for r in sel])
        print(f"{precision} ({len(sel) // 5:,} carers)")
        print(f"  |home - public point| km:                {_pct(shift)}")
        print(f"  |d(origin, home) - d(origin, public)| km: {_pct(error)}")
        print(f"  shown distance changed by, km:           {_pct(shown)}")
        print(f"  share of shown distances unchanged: {np.mean(shown == 0):.1%}")
    referential_proxy()


if __name__ == "__main__":
    asyncio.run(main())
