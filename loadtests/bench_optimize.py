"""Benchmark: optimize 500 waiting requests against every free place of their region.

On the seeded national dataset (``PLACES_DATABASE_URL``), inserts N synthetic waiting
requests for one department inside a transaction that is rolled back at the end, loads the
problem exactly as the endpoint does (region's free places, K nearest acceptable per
request), then times the exact optimum and first-come-first-served on the same data and
prints how much better the optimum is. Prints only.

    .venv/bin/python -m loadtests.bench_optimize --requests 500 --department 59
"""

import argparse
import asyncio
import random
import time
from datetime import date

import asyncpg

from api.assignments.service import load_problem
from api.db import init_connection
from api.settings import get_settings
from loadtests.bench_search import random_needs
from matching import greedy, optimize


async def main_async(n: int, department: str, k: int, time_limit: float, run_exact: bool) -> None:
    dsn = get_settings().database_url
    needs = [b for b in await random_needs(dsn, n * 3, seed=11)]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    rng = random.Random(3)
    try:
        tr = conn.transaction()
        await tr.start()
        communes = [
            r["insee"]
            for r in await conn.fetch(
                "SELECT insee FROM communes WHERE department = $1 ORDER BY insee", department
            )
        ]
        rows = []
        for i, body in enumerate(needs[:n]):
            rows.append(
                (
                    department,
                    f"BENCH-{i}",
                    body["children"],
                    rng.choice(communes),
                    body["care_mode"],
                    date(2026, rng.randint(1, 10), rng.randint(1, 28)),
                )
            )
        await conn.executemany(
            """
            INSERT INTO placement_requests (department, reference, children, origin_commune,
                   origin_location, care_mode, urgency, measure_kind, decided_on, created_by)
            SELECT $1, $2, $3, $4::text, c.location, $5, 'days', 'judicial', $6, 'bench'
              FROM communes c WHERE c.insee = $4::text
            """,
            rows,
        )
        t0 = time.perf_counter()
        problem_needs, offers_by_need, n_offers = await load_problem(conn, department, None, k)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        best = optimize(problem_needs, offers_by_need, time_limit=time_limit)
        t_opt = time.perf_counter() - t0
        exact = None
        if run_exact:
            t0 = time.perf_counter()
            exact = optimize(problem_needs, offers_by_need)
            t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        fcfs = greedy(problem_needs, offers_by_need)
        t_greedy = time.perf_counter() - t0
        await tr.rollback()
    finally:
        await conn.close()
    groups = sum(len(need.children) > 1 for _, need in problem_needs)
    pairs = sum(len(v) for v in offers_by_need.values())
    children = {rid: len(need.children) for rid, need in problem_needs}
    placed_best = sum(children[a.request_id] for a in best.assignments)
    placed_fcfs = sum(children[a.request_id] for a in fcfs.assignments)
    print(
        f"optimize: {len(problem_needs)} requests ({groups} sibling groups) of department "
        f"{department}, {n_offers} free offers in its region, {pairs} candidate pairs (K={k})"
    )
    print(
        f"  load (SQL + candidates) {t_load * 1000:.0f} ms; solve optimum "
        f"{t_opt * 1000:.0f} ms ({best.method}, optimal={best.optimal}); "
        f"greedy {t_greedy * 1000:.0f} ms; endpoint total ≈ "
        f"{(t_load + t_opt + t_greedy) * 1000:.0f} ms"
    )
    if exact is not None:
        print(
            f"  exact optimum (no time limit): {exact.total:.2f} in {t_exact * 1000:.0f} ms; "
            f"time-limited plan reaches {best.total / max(exact.total, 1e-9):.1%} of it"
        )
    print(
        f"  total score: optimum {best.total:.2f} vs greedy {fcfs.total:.2f} "
        f"(ratio {best.total / max(fcfs.total, 1e-9):.3f}); children placed "
        f"{placed_best} vs {placed_fcfs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--department", default="59")
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument(
        "--time-limit", type=float, default=get_settings().optimize_time_limit_seconds
    )
    parser.add_argument("--exact", action="store_true", help="Also solve without time limit.")
    args = parser.parse_args()
    asyncio.run(main_async(args.requests, args.department, args.k, args.time_limit, args.exact))


if __name__ == "__main__":
    main()
