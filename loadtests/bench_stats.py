"""Benchmark: the national statistics endpoints of steering (#18) over HTTP, on the national
dataset with its 12 months of synthetic history (``seed.history``). Target: < 200 ms p95.

Serves the API (one worker) on a private copy (``places_bench_stats_<pid>``, dropped at the
end) of a template seeded once by this code's seed (``places_stats_template``; ``--fresh``
reseeds it after a change of the seed), then asks each endpoint ``--runs`` times in turn,
sequentially, as the national role, after ``--warmup`` calls each, and prints p50 / p95 / max
in milliseconds. The offer series' and the trends' closed months are cached by the server
after their first call (``api.stats.offer``, ``api.stats.trends``): each first (cold) call
is printed apart.

    .venv-dev/bin/python -m loadtests.bench_stats [--runs 60] [--fresh] [--redis-url …]
"""

import argparse
import asyncio
import os
import time

import asyncpg
import httpx

from api.auth import ensure_local_keys, issue_token
from api.db import _with_database, drop_database
from api.settings import get_settings
from loadtests.common import percentile, prepare_database
from loadtests.harness import BENCH_LIMITS, ServiceProcess

TEMPLATE = "places_stats_template"
TARGET_MS = 200.0
ENDPOINTS = (
    "/v1/stats/children",
    "/v1/stats/flows",
    "/v1/stats/offer?months=12",
    "/v1/stats/coverage",
    "/v1/stats/authorities",
    "/v1/stats/trends?months=12",
)


async def measure(base: str, token: str, runs: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each endpoint; the first call of each is ``<path> (cold)``."""
    out: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        for path in ENDPOINTS:
            start = time.perf_counter()
            r = await client.get(path)
            r.raise_for_status()
            out[f"{path} (cold)"] = [(time.perf_counter() - start) * 1000]
            for _ in range(warmup):
                (await client.get(path)).raise_for_status()
        for path in ENDPOINTS:
            out[path] = []
        for _ in range(runs):
            for path in ENDPOINTS:
                start = time.perf_counter()
                r = await client.get(path)
                out[path].append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
    return out


async def volumes(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM placement_requests) AS requests,"
            " (SELECT count(*) FROM request_events) AS events,"
            " (SELECT count(*) FROM holds) AS holds,"
            " (SELECT count(*) FROM units) AS units,"
            " (SELECT count(*) FROM foster_carers) AS carers"
        )
    finally:
        await conn.close()
    return ", ".join(f"{k} {v:,}" for k, v in dict(row).items())


async def main(args: argparse.Namespace) -> None:
    settings = get_settings()
    ensure_local_keys(settings)
    os.environ["PLACES_KEYS_DIR"] = str(settings.keys_dir.resolve())
    if args.fresh:
        await drop_database(_with_database(settings.owner_dsn, TEMPLATE))
    database = f"places_bench_stats_{os.getpid()}"
    dsn = await prepare_database(settings.owner_dsn, database, TEMPLATE, 1.0, False)
    server = ServiceProcess(dsn, args.redis_url, workers=1, **BENCH_LIMITS)  # type: ignore[arg-type]
    try:
        await server.astart(timeout=120)
        print(f"dataset: {await volumes(dsn)}", flush=True)
        timings = await measure(server.http, issue_token("national"), args.runs, args.warmup)
    finally:
        await server.astop()
        await drop_database(dsn)
    print(f"{'endpoint':<40} {'p50':>8} {'p95':>8} {'max':>8}  (ms, {args.runs} calls)")
    worst = 0.0
    for path, values in timings.items():
        p95 = percentile(values, 0.95)
        if not path.endswith("(cold)"):
            worst = max(worst, p95)
        print(
            f"{path:<40} {percentile(values, 0.5):>8.1f} {p95:>8.1f} {max(values):>8.1f}",
            flush=True,
        )
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"target p95 < {TARGET_MS:.0f} ms: {verdict} (worst p95 {worst:.1f} ms)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_stats")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="reseed the template first")
    parser.add_argument(
        "--redis-url", default=None, help="default: the settings' (PLACES_REDIS_URL)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
