"""Benchmark: optimize 500 waiting requests against every free place of their region.

On the seeded national dataset (``PLACES_DATABASE_URL``), inserts N synthetic waiting
requests for one department (deleted again at the end), times the endpoint's steps in
process — load (region's free places, K nearest acceptable per request), solve with the
service's budget, gap and waiting/urgency weights, first-come-first-served on the same
data — and compares the plans as the endpoint's report does (children placed, days waited by
the children left unplaced, children placed by urgency), beside the score-only optimum
(weights 0, the objective before #16) to show what weighing the wait costs in score;
``--exact`` also proves the weighted optimum. The requests' urgencies are mixed (20 %
immediate, 50 % days, 30 % planned) and their decisions dated 0–240 days ago. Then it serves
the API with one worker and times ``POST /v1/assignments/optimize`` end to end. Prints only.

    .venv-dev/bin/python -m loadtests.bench_optimize --requests 500 --department 59 --exact
"""

import argparse
import asyncio
import random
import time
from datetime import date, timedelta

import asyncpg
import httpx

from api.assignments.service import load_problem
from api.auth import issue_token
from api.authorities import of_department
from api.db import init_connection
from api.settings import get_settings
from loadtests.bench_search import random_needs
from loadtests.common import ensure_settings_database
from loadtests.harness import serve
from matching import Need, Plan, greedy, optimize
from matching.assignment import Weights, plan_report

INSERT_SQL = """
INSERT INTO placement_requests (department, reference, children, origin_commune,
       origin_location, timing, public, formula, urgency, measure_kind, decided_on,
       created_by)
SELECT $1, $2, $3, $4::text, c.location, $5, $8, $9, $7, 'judicial', $6, 'bench'
  FROM communes c WHERE c.insee = $4::text
"""


async def insert_requests(conn: asyncpg.Connection, department: str, n: int) -> None:
    """N synthetic waiting requests of one department (committed: the endpoint reads them)."""
    needs = await random_needs(get_settings().database_url, n * 3, seed=11)
    rng = random.Random(3)
    communes = [
        r["insee"]
        for r in await conn.fetch(
            "SELECT insee FROM communes WHERE department = $1 ORDER BY insee", department
        )
    ]
    today = date.today()
    rows = [
        (
            department,
            f"BENCH-{i}",
            body["children"],
            rng.choice(communes),
            body["timing"],
            today - timedelta(days=rng.randint(0, 240)),
            rng.choices(["immediate", "days", "planned"], weights=[20, 50, 30])[0],
            body["public"],
            body["formula"],
        )
        for i, body in enumerate(needs[:n])
    ]
    await conn.executemany(INSERT_SQL, rows)


async def in_process(conn: asyncpg.Connection, department: str, k: int, exact: bool) -> None:
    """The endpoint's steps timed one by one, and (``exact``) the proved optimum."""
    settings = get_settings()
    t0 = time.perf_counter()
    authority = of_department(department)  # the benchmark's department has one authority
    problem_needs, offers_by_need, n_offers, waited = await load_problem(conn, authority, None, k)
    t_load = time.perf_counter() - t0
    weights = Weights(settings.optimize_waiting_weight, settings.optimize_urgency_weight)
    t0 = time.perf_counter()
    best = optimize(
        problem_needs,
        offers_by_need,
        time_limit=settings.optimize_time_limit_seconds,
        gap=settings.optimize_gap,
        waited_days=waited,
        weights=weights,
    )
    t_opt = time.perf_counter() - t0
    t0 = time.perf_counter()
    fcfs = greedy(problem_needs, offers_by_need, waited_days=waited, weights=weights)
    t_greedy = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_only = optimize(
        problem_needs,
        offers_by_need,
        time_limit=settings.optimize_time_limit_seconds,
        gap=settings.optimize_gap,
    )
    t_score = time.perf_counter() - t0
    groups = sum(len(need.children) > 1 for _, need in problem_needs)
    pairs = sum(len(v) for v in offers_by_need.values())
    print(
        f"optimize: {len(problem_needs)} requests ({groups} sibling groups) of department "
        f"{department}, {n_offers} free offers in its region, {pairs} candidate pairs (K={k})"
    )
    print(
        f"  in process: load (SQL + candidates) {t_load * 1000:.0f} ms; solve "
        f"{t_opt * 1000:.0f} ms ({best.method}, optimal={best.optimal}, certified gap "
        f"{best.gap:.3%}; budget {settings.optimize_time_limit_seconds} s, gap asked "
        f"{settings.optimize_gap:.1%}; weights waiting {weights.waiting} / 30 d, urgency "
        f"{weights.urgency} / step); greedy {t_greedy * 1000:.0f} ms; score-only optimum "
        f"{t_score * 1000:.0f} ms ({score_only.method}, gap {score_only.gap:.3%})"
    )
    if exact:
        t0 = time.perf_counter()
        proved = optimize(problem_needs, offers_by_need, waited_days=waited, weights=weights)
        t_exact = time.perf_counter() - t0
        print(
            f"  proved weighted optimum (no limit, zero gap): objective {proved.objective:.2f} in"
            f" {t_exact * 1000:.0f} ms; the endpoint's plan reaches "
            f"{best.objective / max(proved.objective, 1e-9):.2%} of it"
        )
    print(
        f"  objective (score + waiting and urgency): optimum {best.objective:.2f} vs greedy "
        f"{fcfs.objective:.2f} (ratio {best.objective / max(fcfs.objective, 1e-9):.3f})"
    )
    for name, plan in (("weighted", best), ("score-only", score_only), ("greedy", fcfs)):
        print("  " + compare_line(name, plan, problem_needs, waited))


def compare_line(
    name: str, plan: Plan, needs: list[tuple[str, Need]], waited: dict[str, float]
) -> str:
    """One plan's figures, as the endpoint reports them."""
    r = plan_report(plan, needs, waited)
    mean = "–" if r.unplaced_waited_days_mean is None else f"{r.unplaced_waited_days_mean:.0f}"
    worst = "–" if r.unplaced_waited_days_max is None else f"{r.unplaced_waited_days_max:.0f}"
    urgency = ", ".join(f"{k} {v}" for k, v in r.placed_by_urgency.items())
    return (
        f"{name:>10}: total score {plan.total:.2f}; children placed {r.children_placed} "
        f"(left {r.children_unplaced}: waited mean {mean} / max {worst} days); placed by "
        f"urgency: {urgency}"
    )


async def over_http(base: str, department: str, runs: int) -> None:
    authority = of_department(department)
    headers = {"Authorization": f"Bearer {issue_token('department', authority=authority)}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        walls = []
        for _ in range(runs + 1):  # the first call warms the worker up (imports, pool)
            t0 = time.perf_counter()
            r = await client.post("/v1/assignments/optimize", json={"authority": authority})
            walls.append(time.perf_counter() - t0)
            r.raise_for_status()
        body = r.json()
        plan = body["optimal"]
    print(
        f"  endpoint over HTTP (one worker), {runs} calls after a warm-up: "
        + ", ".join(f"{w * 1000:.0f}" for w in walls[1:])
        + f" ms (max {max(walls[1:]) * 1000:.0f} ms); last plan {plan['method']}, "
        f"optimal={plan['optimal']}, gap {plan['gap']}; children placed "
        f"{plan['children_placed']} vs greedy {body['greedy']['children_placed']}, left waited "
        f"mean {plan['unplaced_waited_days_mean']} vs {body['greedy']['unplaced_waited_days_mean']}"
        " days"
    )


CLEANUP_SQL = "DELETE FROM placement_requests WHERE created_by = 'bench' AND department = $1"


async def prepare(n: int, department: str, k: int, exact: bool) -> None:
    conn = await asyncpg.connect(get_settings().database_url)
    await init_connection(conn)
    try:
        await conn.execute(CLEANUP_SQL, department)
        await insert_requests(conn, department, n)
        await in_process(conn, department, k, exact)
    finally:
        await conn.close()


async def cleanup(department: str) -> None:
    conn = await asyncpg.connect(get_settings().database_url)
    try:
        await conn.execute(CLEANUP_SQL, department)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--department", default="59")
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3, help="Timed calls of the endpoint.")
    parser.add_argument("--exact", action="store_true", help="Also prove the optimum.")
    args = parser.parse_args()
    ensure_settings_database()
    try:
        asyncio.run(prepare(args.requests, args.department, args.k, args.exact))
        with serve(workers=1) as base:
            asyncio.run(over_http(base, args.department, args.runs))
    finally:
        asyncio.run(cleanup(args.department))


if __name__ == "__main__":
    main()
