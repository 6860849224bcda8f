"""Benchmark of the agrément import: a synthetic 40,000-line national file into a fresh database.

Run: ``.venv-dev/bin/python -m loadtests.bench_import_agrements [--lines N] [--batch-size N]``.

The file is written to a temporary file in the documented layout (docs/api.md, "Import of
the national agrément file"), deterministically from the committed referential (communes
drawn by population, lines grouped by department as the national file is, numbers
``AF-<dept>-<serial>``): capacities 1–3 and 1 % of derogations for 4–6 children, 2 %
suspended, 0.4 % withdrawn, 22 % employed by one of the department's placement services
(FINESS 236, one per department, created in the scratch database), the optional columns on
one line in three, and 0.5 % of bad lines (issuing department not the commune's, capacity 4
without derogation, unknown commune, unreadable date, unknown reason code). A scratch
database is created, migrated and given the referential and the services (not timed), then
the import runs three times: the first creates everything, the second (same file) must change
nothing, the third changes 5 % of the lines (a renewal, a capacity, a suspension). Prints the
figures of this run only; no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from api.db import drop_database, ensure_database, init_connection, migrate
from geo.finess import make_finess
from geo.referential import load_communes
from interop.agrements_import import COLUMNS, ImportReport, import_file, plus_years
from loadtests.common import server_database
from seed.reference import load_reference

TARGET_SECONDS = 30


def _service_finess(department: str) -> str:
    """The department's synthetic placement service (serial 999999)."""
    return make_finess(department, 999_999)


def synthesize(path: Path, lines: int, seed: int, changed: float = 0.0) -> dict[str, int]:
    """Write a file of ``lines`` agréments (plus the header); ``changed``: the share of lines
    altered against the file of the same seed (for the update run)."""
    rng = random.Random(seed)
    alter = random.Random(seed + 1)
    communes = sorted(load_communes().values(), key=lambda c: c.insee)
    weights = [max(c.population, 1) for c in communes]
    drawn = sorted(rng.choices(communes, weights=weights, k=lines), key=lambda c: c.department)
    today = date(2026, 11, 28)
    counts = {"bad": 0, "changed": 0, "derogations": 0, "suspended": 0, "withdrawn": 0}
    serials: dict[str, int] = {}
    out = [";".join(COLUMNS)]
    for i, commune in enumerate(drawn):
        dept = commune.department
        serial = serials[dept] = serials.get(dept, 0) + rng.randint(1, 4)
        issued = today - timedelta(days=rng.randint(0, 1800))
        until = ""
        x = rng.random()
        capacity, derog = (rng.randint(4, 6), True) if x < 0.01 else (rng.randint(1, 3), False)
        state, state_from, state_until, reason = "valid", "", "", ""
        y = rng.random()
        if y < 0.02:
            state, reason = "suspended", rng.choice(("enquete_administrative", "sante"))
            state_from = (today - timedelta(days=rng.randint(0, 100))).isoformat()
            state_from = max(state_from, issued.isoformat())
        elif y < 0.024:
            state, reason = "withdrawn", "conditions_non_remplies"
            state_from = max((today - timedelta(days=rng.randint(0, 300))), issued).isoformat()
        employer = _service_finess(dept) if rng.random() >= 0.78 else rng.choice(("", dept))
        if employer == dept and commune.authority != dept:
            employer = commune.authority
        optional = ["", "", "", ""]
        if i % 3 == 0:
            optional = ["", "0", "21", "durable|urgence"]
        if changed and alter.random() < changed:
            counts["changed"] += 1
            kind = alter.randrange(3)
            if kind == 0:
                until = plus_years(issued, 6).isoformat()  # renewed
            elif kind == 1 and not derog:
                capacity = max(1, capacity - 1)
            elif state == "valid":
                state, state_from, reason = "suspended", today.isoformat(), "sante"
        line_dept = dept
        insee = commune.insee
        issued_text = issued.isoformat()
        bad = i % 200 == 17
        if bad:
            counts["bad"] += 1
            k = (i // 200) % 5
            if k == 0:
                line_dept = "75" if dept != "75" else "13"
            elif k == 1:
                capacity, derog = 4, False
            elif k == 2:
                insee = "99999"
            elif k == 3:
                issued_text = "31/02/2024"
            else:
                state, state_from, reason = "suspended", issued_text, "humeur"
        counts["derogations"] += derog
        counts["suspended"] += state == "suspended"
        counts["withdrawn"] += state == "withdrawn"
        fields = [
            f"AF-{dept}-{serial:06d}",
            line_dept,
            issued_text,
            until,
            str(capacity),
            str(capacity) if derog else "",
            "fratrie" if derog else "",
            "",
            state,
            state_from,
            reason,
            insee,
            employer,
            state_until,
            *optional[1:],
        ]
        out.append(";".join(fields))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    counts["lines"] = len(out)
    return counts


async def _services(conn: asyncpg.Connection) -> int:
    """One placement service (FINESS 236) per department, at its first commune's point."""
    return int(
        await conn.fetchval(
            """
            WITH d AS (
                SELECT DISTINCT ON (department) department, insee, location
                  FROM communes ORDER BY department, insee
            ), ins AS (
                INSERT INTO structures (finess, name, category, department, commune, location)
                SELECT f.finess, 'Service de placement familial ' || d.department, '236',
                       d.department, d.insee, d.location
                  FROM d JOIN unnest($1::text[], $2::text[]) AS f(department, finess)
                    ON f.department = d.department
                RETURNING 1
            )
            SELECT count(*) FROM ins
            """,
            sorted(_departments()),
            [_service_finess(d) for d in sorted(_departments())],
        )
    )


def _departments() -> set[str]:
    return {c.department for c in load_communes().values()}


def _line(label: str, report: ImportReport, elapsed: float, lines: int) -> str:
    return (
        f"{label}: {elapsed:.2f} s — {lines / elapsed:,.0f} lines/s; created {report.created:,},"
        f" updated {report.updated:,}, unchanged {report.unchanged:,}, free places withdrawn"
        f" {report.places_withdrawn:,}, refused {len(report.rejected):,}"
    )


async def run(args: argparse.Namespace) -> None:
    dsn = server_database(f"places_bench_agrements_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agrements-national.csv"
        changed_path = Path(tmp) / "agrements-national-changed.csv"
        start = time.perf_counter()
        counts = synthesize(path, args.lines, args.seed)
        changed = synthesize(changed_path, args.lines, args.seed, changed=0.05)
        print(
            f"file: {counts['lines'] - 1:,} lines ({path.stat().st_size / 1e6:.1f} MB),"
            f" {counts['derogations']:,} derogations, {counts['suspended']:,} suspended,"
            f" {counts['withdrawn']:,} withdrawn, {counts['bad']:,} bad lines;"
            f" changed file: {changed['changed']:,} lines altered"
            f" — written in {time.perf_counter() - start:.1f} s"
        )
        await drop_database(dsn)
        await ensure_database(dsn)
        await asyncio.to_thread(migrate, dsn)
        conn = await asyncpg.connect(dsn)
        await init_connection(conn)
        try:
            await load_reference(conn)
            services = await _services(conn)
            print(f"scratch database ready: referential and {services} placement services")
            runs = (
                ("first import (fresh database)", path),
                ("second import (same file)", path),
                ("third import (5 % of lines changed)", changed_path),
            )
            for label, source in runs:
                start = time.perf_counter()
                report = await import_file(conn, source, batch_size=args.batch_size)
                print(_line(label, report, time.perf_counter() - start, counts["lines"] - 1))
            carers = await conn.fetchval("SELECT count(*) FROM foster_carers")
            events = await conn.fetchval("SELECT count(*) FROM outbox_events")
            print(f"database: {carers:,} carers, {events:,} events")
        finally:
            await conn.close()
            if not args.keep:
                await drop_database(dsn)
    print(f"target: < {TARGET_SECONDS} s for 40,000 lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
