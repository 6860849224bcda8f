"""Benchmark: POST /v1/search over 1,000 random needs on the national dataset.

Serves the API with one worker on a free port (against ``PLACES_DATABASE_URL``, seeded),
sends the needs one after the other over HTTP and measures end-to-end latency; then, in the
same run, replays for each need the SQL layer of its search (``fetch_offers`` for the steps
it tried: the same queries, memo, row mapping and two connections, without HTTP, auth,
matching or JSON) straight on asyncpg, and prints the ratio. Needs mix
single children and sibling groups, with and without disability profiles. Each need is
searched by the competent authority of its origin's commune, as a department searches for
the children of its territory (since #15 that matters: carers employed by an authority are
proposed to other authorities only when their employer opened them). Prints only.

    .venv-dev/bin/python -m loadtests.bench_search --needs 1000
"""

import argparse
import asyncio
import random
import statistics
import time

import asyncpg
import httpx

from api.auth import issue_token
from api.db import init_connection
from api.search.repository import fetch_offers, resolve_origin
from api.search.service import PLAN_PER_QUERY
from api.settings import get_settings
from geo.referential import neighbours
from loadtests.common import percentile
from loadtests.harness import serve
from matching import LADDER, Child, Need
from matching.vocabulary import DISABILITY_PROFILES

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
    codes = [c["insee"] for c in communes]
    authority = {c["insee"]: c["authority"] for c in communes}
    weights = [c["population"] for c in communes]
    profiles = sorted(DISABILITY_PROFILES)
    needs = []
    for _ in range(n):
        size = rng.choices([1, 2, 3, 4], weights=[70, 18, 8, 4])[0]
        care = rng.choice(CARE_MODES)
        lo, hi = (16, 21) if care == "jeune_majeur" else (13, 17) if care == "mna" else (0, 17)
        children = []
        for _ in range(size):
            child = {"age": rng.randint(lo, hi), "sex": rng.choice("FM"), "disability_profiles": []}
            if rng.random() < 0.25:
                child["disability_profiles"] = [rng.choice(profiles)]
            children.append(child)
        needs.append(
            {
                "children": children,
                "origin": {"commune": (commune := rng.choices(codes, weights)[0])},
                "care_mode": care,
                "max_distance_km": rng.choice([30, 50, 80]),
                "limit": 10,
                "_authority": authority[commune],
            }
        )
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


async def raw_sql(dsn: str, needs: list[dict], tried: list[list[str]]) -> list[float]:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    second = await asyncpg.connect(dsn)  # as the service: carers' queries beside the units'
    await init_connection(second)
    steps = {s.code: s for s in LADDER}
    out = []
    try:
        for body, codes in zip(needs, tried, strict=True):
            need = Need(
                children=tuple(
                    Child(c["age"], c["sex"], frozenset(c["disability_profiles"]))
                    for c in body["children"]
                ),
                care_mode=body["care_mode"],
            )
            t0 = time.perf_counter()
            async with conn.transaction(readonly=True), second.transaction(readonly=True):
                await conn.execute(PLAN_PER_QUERY)  # as the service: custom plans
                await second.execute(PLAN_PER_QUERY)
                origin = await resolve_origin(conn, body["origin"]["commune"], None, None)
                assert origin is not None
                near = sorted(neighbours(origin.department))
                memo: dict = {}  # the service's own per-search memo and decisions
                for code in codes:
                    step = steps[code].resolve(body["max_distance_km"])
                    await fetch_offers(conn, need, origin, step, near, memo, second)
            out.append(time.perf_counter() - t0)
    finally:
        await conn.close()
        await second.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--needs", type=int, default=1000)
    args = parser.parse_args()
    dsn = get_settings().database_url
    needs = asyncio.run(random_needs(dsn, args.needs))
    with serve(workers=1) as base:
        latencies, tried = asyncio.run(over_http(base, needs))
    raw = asyncio.run(raw_sql(dsn, needs, tried))
    ms = 1000
    groups = sum(len(b["children"]) > 1 for b in needs)
    steps = statistics.mean(len(t) for t in tried)
    print(
        f"search: {len(needs)} needs ({groups} sibling groups), one worker, sequential; "
        f"mean ladder steps tried {steps:.2f}"
    )
    print(
        f"  end to end ms: p50 {percentile(latencies, 0.5) * ms:.1f}  "
        f"p95 {percentile(latencies, 0.95) * ms:.1f}  p99 {percentile(latencies, 0.99) * ms:.1f}"
    )
    print(
        f"  SQL layer ms: p50 {percentile(raw, 0.5) * ms:.1f}  p95 {percentile(raw, 0.95) * ms:.1f}"
    )
    print(
        "  ratio end-to-end / SQL layer: p50 "
        f"{percentile(latencies, 0.5) / percentile(raw, 0.5):.2f}"
        f"  p95 {percentile(latencies, 0.95) / percentile(raw, 0.95):.2f}"
    )


if __name__ == "__main__":
    main()
