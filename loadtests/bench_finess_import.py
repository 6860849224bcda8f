"""Benchmark of the FINESS import: a synthetic 100,000-line extract into a fresh database.

Run: ``.venv-dev/bin/python -m loadtests.bench_finess_import [--lines N] [--pde-share F]``.

The extract is written to a temporary file in the official format and encoding (first line
``finess;etalab;…``, ``structureet`` lines of 32 fields, then ``geolocalisation`` lines,
Windows-1252): half the lines are establishments, half their geolocations, over the real
communes of the referential (metropolitan in Lambert-93, overseas in their UTM projections
under the extract's ``9A``…``9F`` codes), a ``--pde-share`` of them (default 20 %, eight
times the real national share, so that the writing side is exercised) in the child
protection categories, a few quoted names with ``;`` and ``""``, and 0.2 % of bad lines
(wrong key, too few fields). A scratch database is created, migrated and given the
referential (not timed), then the import runs twice: the first run creates everything,
the second must change nothing. Prints the figures of this run only; no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import asyncpg

from api.codes import PDE_CATEGORIES
from api.db import drop_database, ensure_database, init_connection, migrate
from geo.finess import OVERSEAS_FINESS_PREFIX, finess_check_key
from geo.referential import load_communes
from interop.finess_import import import_file, read_extract
from loadtests.common import server_database
from seed.reference import load_reference

OTHER_CATEGORIES = ("355", "500", "620", "183", "255", "446", "209", "223", "189", "354")
PROJECTIONS = {
    "971": (5490, "2,ATLASANTE,96,BAN,EPSG:5490 RGAF09/UTM Zone 20N (Antilles)"),
    "972": (5490, "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_N20"),
    "973": (2972, "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_N22"),
    "974": (2975, "2,ATLASANTE,96,BAN,EPSG:2975 RGR92 / UTM zone 40S (La Réunion)"),
    "976": (4471, "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_S38"),
}
LAMBERT = (2154, "1,ATLASANTE,96,BAN,EPSG:2154 RGF93 / Lambert-93 (Métropole)")


def synthesize(path: Path, lines: int, pde_share: float, seed: int) -> dict[str, int]:
    """Write an extract of ``lines`` lines; returns what it contains."""
    from pyproj import Transformer

    rng = random.Random(seed)
    communes = sorted(load_communes().values(), key=lambda c: c.insee)
    establishments = lines // 2
    serials: dict[str, int] = {}
    structure_lines: list[str] = []
    points: dict[int, list[tuple[str, float, float]]] = {}
    counts = {"pde": 0, "other": 0, "bad": 0}
    for i in range(establishments):
        commune = rng.choice(communes)
        dept = commune.department
        serial = serials[dept] = serials.get(dept, 1000 + rng.randrange(1000)) + 1
        if dept in OVERSEAS_FINESS_PREFIX:
            body, extract_dept = f"97{dept[-1]}{serial % 100_000:05d}", OVERSEAS_FINESS_PREFIX[dept]
        else:
            body, extract_dept = f"{dept}{serial % 1_000_000:06d}", dept
        finess = body + finess_check_key(body)
        pde = rng.random() < pde_share
        category = rng.choice(PDE_CATEGORIES) if pde else rng.choice(OTHER_CATEGORIES)
        name = f"ETABLISSEMENT {i}"
        if i % 97 == 0:
            name = f'"ASSOCIATION ""LES {i}""; SITE {i}"'
        bad = i % 500 == 7
        if bad:
            finess = body + str((int(finess[-1]) + 1) % 10)
        truncated = i % 500 == 250
        counts["bad" if bad or truncated else "pde" if pde else "other"] += 1
        postcode = commune.postcodes[0] if commune.postcodes else commune.insee
        fields = [
            "structureet",
            finess,
            finess,
            name,
            name,
            "",
            "",
            str(rng.randint(1, 200)),
            "R",
            "DES ÉCOLES",
            "",
            "",
            commune.insee[2:],
            extract_dept,
            "LIBELLE",
            f"{postcode} {commune.name.upper()}",
            "0102030405",
            "",
            category,
            "Catégorie",
            "4403",
            "Agrégat",
            "",
            "",
            "08",
            "Président du Conseil Départemental",
            "",
            "",
            "2001-01-01",
            "2001-01-01",
            "2024-05-02",
            "",
        ]
        if truncated:
            fields = fields[:7]  # too few fields
        structure_lines.append(";".join(fields))
        epsg = PROJECTIONS.get(dept, LAMBERT)[0]
        lat = commune.lat + rng.uniform(-0.01, 0.01)
        lon = commune.lon + rng.uniform(-0.01, 0.01)
        points.setdefault(epsg, []).append((finess, lat, lon))
    geo_lines: list[str] = []
    sources = {epsg: src for epsg, src in [LAMBERT, *PROJECTIONS.values()]}
    for epsg, items in points.items():
        forward = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
        xs, ys = forward.transform([p[2] for p in items], [p[1] for p in items])
        for (finess, _, _), x, y in zip(items, xs, ys, strict=True):
            geo_lines.append(f"geolocalisation;{finess};{x:.1f};{y:.1f};{sources[epsg]};2026-05-04")
    rng.shuffle(geo_lines)
    body_lines = structure_lines + geo_lines[: lines - 1 - len(structure_lines)]
    text = "\n".join(["finess;etalab;111;2026-11-25", *body_lines]) + "\n"
    path.write_bytes(text.encode("cp1252", errors="replace"))
    counts["lines"] = 1 + len(body_lines)
    return counts


async def run(args: argparse.Namespace) -> None:
    dsn = server_database(f"places_bench_finess_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "etalab-cs1100507-stock-20261125-0336.csv"
        start = time.perf_counter()
        counts = synthesize(path, args.lines, args.pde_share, args.seed)
        print(
            f"extract: {counts['lines']:,} lines ({path.stat().st_size / 1e6:.1f} MB, cp1252),"
            f" {counts['pde']:,} PDE establishments, {counts['other']:,} others,"
            f" {counts['bad']:,} bad lines — written in {time.perf_counter() - start:.1f} s"
        )
        await drop_database(dsn)
        await ensure_database(dsn)
        await asyncio.to_thread(migrate, dsn)
        conn = await asyncpg.connect(dsn)
        await init_connection(conn)
        try:
            await load_reference(conn)
            departments = {r["code"] for r in await conn.fetch("SELECT code FROM departments")}
            communes = {
                r["insee"]: r["department"]
                for r in await conn.fetch("SELECT insee, department FROM communes")
            }
            data = path.read_bytes()
            start = time.perf_counter()
            rows, _ = read_extract(data, departments, communes)
            parse = time.perf_counter() - start
            print(f"parse + validate + reproject only: {parse:.2f} s ({len(rows):,} rows kept)")
            for label in ("first import (fresh database)", "second import (same file)"):
                start = time.perf_counter()
                report = await import_file(conn, path, batch_size=args.batch_size)
                elapsed = time.perf_counter() - start
                print(
                    f"{label}: {elapsed:.2f} s — {counts['lines'] / elapsed:,.0f} lines/s;"
                    f" imported {report.imported:,}, updated {report.updated:,},"
                    f" unchanged {report.unchanged:,}, default units {report.default_units:,},"
                    f" skipped {report.skipped:,}, rejected {len(report.rejected):,},"
                    f" at commune point {report.located_by_commune:,}"
                )
        finally:
            await conn.close()
            if not args.keep:
                await drop_database(dsn)
    print("target: < 60 s for 100,000 lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--pde-share", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
