"""Benchmark: POST /v1/search over 1,000 random needs, on the national dataset and on the
same at four times its size, in one run.

For each scale (``--scales``, default 1 and 4): scale 1 is ``PLACES_DATABASE_URL`` (seeded);
any other scale its own database ``places_search_s<scale>`` on the same server, created,
migrated and seeded with ``places seed --scale`` when missing (migrated when present), so the
command needs nothing prepared. Serves the API with one worker on a free port against it,
sends the needs one after the other over HTTP and measures end-to-end latency; then, in the
same run, replays for each need the retrieval layer of its search (``retrieval``: its origin,
the index's refresh and ``fetch_offers`` for the steps it tried — since #16 from the
in-memory index of the free offer, before from two SQL queries per step — without HTTP,
auth, matching, audit or JSON) straight on asyncpg, and prints the ratio. Needs mix
single children and sibling groups, with and without disability profiles — graded since #16:
a child with a profile may carry an MDPH notification and the commune of its disability
service, and offers silent on the profile are read when those with a word are short (drawn
from a second stream, so the needs are otherwise those of the benchmarks before). Each need is
searched by the competent authority of its origin's commune, as a department searches for
the children of its territory (since #15 that matters: carers employed by an authority are
proposed to other authorities only when their employer opened them). The same needs at
every scale; the last lines compare each scale's figures with the first's (issue #16: search
cost must not grow faster than the data — p95 at scale 4 within 1.5× of scale 1's). Prints
only.

    .venv-dev/bin/python -m loadtests.bench_search --needs 1000
"""

import argparse
import asyncio
import dataclasses
import os
import random
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import asyncpg
import httpx

from api.auth import issue_token
from api.db import (
    _with_database,
    app_dsn,
    drop_database,
    ensure_database,
    init_connection,
    migrate,
)
from api.search import offer_index
from api.search.repository import fetch_offers, resolve_origin
from api.settings import get_settings
from geo.referential import neighbours
from loadtests.common import ensure_settings_database, percentile
from loadtests.harness import ROOT, serve
from matching import LADDERS, Child, Need
from matching.vocabulary import DISABILITY_PROFILES, LEGACY_CARE_MODE

#: Urgencies of the needs (#16: each has its own ladder), and the share of needs with a school
#: commune beside the family's (the second origin).
URGENCIES = ("immediate", "days", "planned")
URGENCY_WEIGHTS = (20, 50, 30)
SCHOOL_SHARE = 0.4
#: Of the children with a profile (#16, graded): the share notified by the MDPH, and the share
#: followed by a disability service (its commune in the origin's territory).
MDPH_SHARE = 0.6
SERVICE_SHARE = 0.5
SERVICE_KINDS = ("IME", "SESSAD", "DITEP", "IEM", "CAMSP", "CMP")
#: Needs drawn as care modes of old (the same draws as before the vocabulary split), sent in the
#: new vocabulary (``LEGACY_CARE_MODE``).
CARE_MODES = ["durable"] * 6 + ["urgence"] * 3 + ["sequentiel", "mna", "jeune_majeur"]


async def random_needs(dsn: str, n: int, seed: int = 7) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    try:
        communes = await conn.fetch(
            "SELECT insee, population, authority FROM communes WHERE population > 0 ORDER BY insee"
        )
    finally:
        await conn.close()
    rng = random.Random(seed)
    graded = random.Random(seed + 1)  # MDPH and services: the other draws stay as before
    codes = [c["insee"] for c in communes]
    authority = {c["insee"]: c["authority"] for c in communes}
    by_authority: dict[str, list[str]] = {}
    for c in communes:
        by_authority.setdefault(c["authority"], []).append(c["insee"])
    weights = [c["population"] for c in communes]
    profiles = sorted(DISABILITY_PROFILES)
    needs = []
    for _ in range(n):
        size = rng.choices([1, 2, 3, 4], weights=[70, 18, 8, 4])[0]
        care = rng.choice(CARE_MODES)
        lo, hi = (16, 21) if care == "jeune_majeur" else (13, 17) if care == "mna" else (0, 17)
        children = []
        for _ in range(size):
            # Drawn in years (the same stream as before the needs vocabulary), sent in months.
            months = rng.randint(lo, hi) * 12
            child = {"age_months": months, "sex": rng.choice("FM"), "disability_profiles": []}
            if rng.random() < 0.25:
                child["disability_profiles"] = [rng.choice(profiles)]
            children.append(child)
        commune = rng.choices(codes, weights)[0]
        for child in children:
            if child["disability_profiles"]:
                child["mdph_notified"] = graded.random() < MDPH_SHARE
                if graded.random() < SERVICE_SHARE:
                    child["disability_service"] = {
                        "commune": graded.choice(by_authority[authority[commune]]),
                        "kind": graded.choice(SERVICE_KINDS),
                    }
        need = {
            "children": children,
            "origin": {"commune": commune},
            **dict(zip(("timing", "public", "formula"), LEGACY_CARE_MODE[care], strict=True)),
            "urgency": rng.choices(URGENCIES, URGENCY_WEIGHTS)[0],
            "max_distance_km": rng.choice([30, 50, 80]),
            "limit": 10,
            "_authority": authority[commune],
        }
        if rng.random() < SCHOOL_SHARE:  # a school in another commune of the territory
            need["school"] = {"commune": rng.choice(by_authority[authority[commune]])}
        needs.append(need)
    return needs


def searcher(body: dict) -> tuple[dict[str, str], dict]:
    """The headers of the need's authority, and the body the API receives."""
    token = issue_token("department", authority=body["_authority"])
    return {"Authorization": f"Bearer {token}"}, {k: v for k, v in body.items() if k[0] != "_"}


async def over_http(base: str, needs: list[dict]) -> tuple[list[float], list[list[str]]]:
    latencies, tried = [], []
    requests = [searcher(body) for body in needs]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for headers, body in requests[:20]:  # warm-up: prepared statements, pools
            await client.post("/v1/search", json=body, headers=headers)
        for headers, body in requests:
            t0 = time.perf_counter()
            r = await client.post("/v1/search", json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()
            tried.append(r.json()["tried"])
    return latencies, tried


async def retrieval(dsn: str, needs: list[dict], tried: list[list[str]]) -> list[float]:
    """Each need's retrieval layer, as the service runs it: in a read-only transaction, the
    origin, the index's refresh (``offer_index.current``: its changes since the last search,
    one small read) and the steps it tried, read from the index — without HTTP, auth,
    matching, audit or JSON. The index is loaded whole once before (as the service's warm-up
    does)."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    ladders = {u: {s.code: s for s in ladder} for u, ladder in LADDERS.items()}
    out = []
    try:
        async with conn.transaction(readonly=True):
            await offer_index.current(conn)  # the whole read, once
        for body, codes in zip(needs, tried, strict=True):
            need = Need(
                children=tuple(
                    Child(
                        c["age_months"],
                        c["sex"],
                        frozenset(c["disability_profiles"]),
                        c.get("mdph_notified"),
                    )
                    for c in body["children"]
                ),
                timing=body["timing"],
                public=body["public"],
                formula=body["formula"],
                urgency=body["urgency"],
            )
            t0 = time.perf_counter()
            async with conn.transaction(readonly=True):
                origin = await resolve_origin(conn, body["origin"]["commune"], None, None)
                assert origin is not None
                origin = dataclasses.replace(origin, searcher=body["_authority"])
                near = sorted(neighbours(origin.department))
                index, now = await offer_index.current(conn)
                view = index.view(need, origin, now)
                for code in codes:
                    step = ladders[body["urgency"]][code].resolve(body["max_distance_km"])
                    fetch_offers(view, need, step, near, want=body["limit"])
            out.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return out


async def scale_database(scale: float) -> str:
    """The service's DSN of the database of ``scale``: ``PLACES_DATABASE_URL`` at 1, else
    ``places_search_s<scale>`` beside it, created and seeded once (``places seed --scale``),
    and brought to the latest migration."""
    settings = get_settings()
    if scale == 1:
        return settings.database_url
    # Beside a database of another name (a branch's own), its own: never migrate another's.
    base = urlsplit(settings.database_url).path.lstrip("/") or "places"
    prefix = "places_search" if base == "places" else f"{base}_search"
    name = f"{prefix}_s{scale:g}".replace(".", "_")
    owner = _with_database(settings.owner_dsn, name)
    if await ensure_database(owner):
        print(f"database {name}: creating and seeding (scale {scale:g})…", flush=True)
        try:
            await asyncio.to_thread(migrate, owner)
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "api.cli", "seed", "--scale", str(scale)],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PLACES_DATABASE_URL": owner,
                    "PLACES_OWNER_DATABASE_URL": owner,
                },
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:  # never leave a half-seeded database to be measured next time
            await drop_database(owner)
            raise
    else:
        await asyncio.to_thread(migrate, owner)
    return app_dsn(_with_database(settings.database_url, name))


def bench_scale(scale: float, needs: list[dict]) -> dict[str, float]:
    """One scale's run: over HTTP, then the retrieval layer of the same searches; its
    figures."""
    dsn = asyncio.run(scale_database(scale))
    with serve(workers=1, PLACES_DATABASE_URL=dsn) as base:
        latencies, tried = asyncio.run(over_http(base, needs))
    raw = asyncio.run(retrieval(dsn, needs, tried))
    ms = 1000
    figures = {
        "p50": percentile(latencies, 0.5) * ms,
        "p95": percentile(latencies, 0.95) * ms,
        "p99": percentile(latencies, 0.99) * ms,
        "sql_p50": percentile(raw, 0.5) * ms,
        "sql_p95": percentile(raw, 0.95) * ms,
        "steps": statistics.mean(len(t) for t in tried),
    }
    print(
        f"scale {scale:g}: mean ladder steps tried {figures['steps']:.2f}\n"
        f"  end to end ms: p50 {figures['p50']:.1f}  p95 {figures['p95']:.1f}"
        f"  p99 {figures['p99']:.1f}\n"
        f"  retrieval layer ms: p50 {figures['sql_p50']:.1f}  p95 {figures['sql_p95']:.1f}\n"
        f"  ratio end-to-end / retrieval layer: p50 {figures['p50'] / figures['sql_p50']:.2f}"
        f"  p95 {figures['p95'] / figures['sql_p95']:.2f}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--needs", type=int, default=1000)
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0, 4.0], help="dataset sizes, in order"
    )
    args = parser.parse_args()
    needs = asyncio.run(random_needs(ensure_settings_database(), args.needs))
    groups = sum(len(b["children"]) > 1 for b in needs)
    print(
        f"search: {len(needs)} needs ({groups} sibling groups), one worker, sequential;"
        f" scales {', '.join(f'{s:g}' for s in args.scales)}",
        flush=True,
    )
    results = [(scale, bench_scale(scale, needs)) for scale in args.scales]
    first_scale, first = results[0]
    for scale, figures in results[1:]:
        print(
            f"scale {scale:g} / scale {first_scale:g}: end to end p50 "
            f"{figures['p50'] / first['p50']:.2f}  p95 {figures['p95'] / first['p95']:.2f};"
            f" retrieval layer p50 {figures['sql_p50'] / first['sql_p50']:.2f}"
            f"  p95 {figures['sql_p95'] / first['sql_p95']:.2f}"
        )


if __name__ == "__main__":
    main()
