"""Benchmark: the cost of the load balancer's hop, and the standby's lag, on the cluster.

Against the cluster of ``scripts/cluster up`` (or, with ``--own``, one of its own on free
ports, started and stopped here): capacity declarations driven by ``wrk`` (the script of
``bench_declarations``, tokens signed with the cluster's keys) and searches over HTTP, each
through HAProxy and straight to one API instance, alternated ``--rounds`` times in one run,
so that the machine's drift falls on both alike. While declarations go through HAProxy, the
primary's ``pg_stat_replication.replay_lag`` is sampled every 50 ms: its p99 is the
standby's lag under that load. Prints medians of the rounds and the ratios (HAProxy /
direct). With ``--own`` HAProxy fronts the same single instance as the direct side (the
others are stopped): two instances behind the proxy on two cores would measure contention
between them, not the hop (#19); against a running cluster it balances over all of them.

    .venv-dev/bin/python -m loadtests.bench_cluster --own --seconds 15 --rounds 2
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from api.auth import issue_token
from api.settings import Settings
from deploy.cluster import Cluster, Ports
from loadtests.bench_declarations import LUA, load_units, run_wrk
from loadtests.bench_search import random_needs
from loadtests.common import percentile
from loadtests.harness import BENCH_LIMITS


def lua_script(units: list[tuple[str, str, int]], settings: Settings) -> str:
    """``bench_declarations``' script, with tokens the cluster's instances accept."""
    tokens: dict[str, str] = {}
    lines = []
    for unit_id, finess, installed in units:
        token = tokens.setdefault(
            finess, issue_token("structure", finess=finess, settings=settings)
        )
        lines.append(f'  {{"{unit_id}", "{token}", {installed}}},')
    return LUA % ("\n".join(lines), 20261128)


async def replay_lag_samples(dsn: str, stop: asyncio.Event) -> list[float]:
    """The standby's replay lag (seconds) every 50 ms until ``stop``; 0 when caught up (the
    view's lag is null once the standby has replayed everything)."""
    conn = await asyncpg.connect(dsn)
    samples: list[float] = []
    try:
        while not stop.is_set():
            lag = await conn.fetchval(
                "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8"
                " FROM pg_stat_replication"
            )
            samples.append(float(lag))
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return samples


async def declarations(
    base: str, script: Path, seconds: float, connections: int, lag_dsn: str | None
) -> tuple[dict[str, float], list[float]]:
    stop = asyncio.Event()
    sampler = asyncio.create_task(replay_lag_samples(lag_dsn, stop)) if lag_dsn else None
    try:
        result = await asyncio.to_thread(run_wrk, base, script, seconds, connections)
    finally:
        stop.set()
    return result, (await sampler if sampler else [])


async def searches(base: str, needs: list[dict[str, Any]], settings: Settings) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for body in needs:
            token = issue_token("department", authority=body["_authority"], settings=settings)
            payload = {k: v for k, v in body.items() if k[0] != "_"}
            t0 = time.perf_counter()
            r = await client.post(
                "/v1/search", json=payload, headers={"Authorization": f"Bearer {token}"}
            )
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()
    return latencies


async def run(args: argparse.Namespace) -> None:
    own_root: Path | None = None
    if args.own:
        own_root = Path(tempfile.mkdtemp(prefix="places-bench-cluster-"))
        own_root.chmod(0o755)
        cluster = Cluster(own_root, Ports.free(), seed_scale=args.seed_scale, env=BENCH_LIMITS)
        await asyncio.to_thread(cluster.up)
    else:
        cluster = Cluster()
    try:
        settings = Settings(keys_dir=cluster.root / "keys", local_roles=True)
        owner = cluster.dsn("primary", "postgres")
        units = await load_units(owner, 2000)
        needs = await random_needs(owner, args.needs)
        script = Path(tempfile.mkdtemp(prefix="places-bench-cluster-wrk-")) / "declare.lua"
        script.write_text(lua_script(units, settings))
        direct = f"http://127.0.0.1:{cluster.ports.apis[0]}"
        if args.own:
            # HAProxy in front of the same single instance as the direct side: the other
            # instances stopped, and out of its rotation once its health checks say so
            # (fall 3 at one check a second).
            for port in cluster.ports.apis[1:]:
                await asyncio.to_thread(cluster.stop, f"api-{port}")
            await asyncio.sleep(5)
        sides = {"haproxy": cluster.lb_url, "direct": direct}
        print(
            f"cluster: HAProxy {cluster.lb_url}, direct {direct}; {len(units)} units,"
            f" {len(needs)} needs; {args.rounds} rounds of {args.seconds:g} s of declarations"
            f" ({args.connections} connections) and the searches, per side",
            flush=True,
        )
        for base in sides.values():  # warm-up: pools, prepared statements
            await searches(base, needs[:20], settings)
        rates: dict[str, list[float]] = {s: [] for s in sides}
        p95s: dict[str, list[float]] = {s: [] for s in sides}
        search_p50: dict[str, list[float]] = {s: [] for s in sides}
        search_p95: dict[str, list[float]] = {s: [] for s in sides}
        lags: list[float] = []
        failed = 0
        for _ in range(args.rounds):
            for side, base in sides.items():
                lag_dsn = owner if side == "haproxy" else None
                result, samples = await declarations(
                    base, script, args.seconds, args.connections, lag_dsn
                )
                lags += samples
                failed += int(result["non2xx"] + result["errors"])
                rates[side].append(result["requests"] / result["seconds"])
                p95s[side].append(result["p95"])
                latencies = await searches(base, needs, settings)
                search_p50[side].append(percentile(latencies, 0.5) * 1000)
                search_p95[side].append(percentile(latencies, 0.95) * 1000)
        med = statistics.median
        for side in sides:
            print(
                f"{side:8s} declarations/s {med(rates[side]):7.0f}  declaration p95"
                f" {med(p95s[side]):6.1f} ms  search p50 {med(search_p50[side]):6.1f} ms"
                f"  p95 {med(search_p95[side]):6.1f} ms",
                flush=True,
            )
        print(
            f"haproxy / direct: declarations/s {med(rates['haproxy']) / med(rates['direct']):.2f}"
            f"  declaration p95 {med(p95s['haproxy']) / med(p95s['direct']):.2f}"
            f"  search p95 {med(search_p95['haproxy']) / med(search_p95['direct']):.2f}",
            flush=True,
        )
        print(
            f"standby replay lag under the declarations through HAProxy ({len(lags)} samples):"
            f" p50 {percentile(lags, 0.5) * 1000:.1f} ms  p99 {percentile(lags, 0.99) * 1000:.1f}"
            f" ms  max {max(lags) * 1000:.1f} ms; non-2xx or failed declarations: {failed}",
            flush=True,
        )
        shutil.rmtree(script.parent, ignore_errors=True)
    finally:
        if own_root is not None:
            await asyncio.to_thread(cluster.down)
            shutil.rmtree(own_root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--own", action="store_true", help="Start a cluster of its own.")
    parser.add_argument("--seconds", type=float, default=15, help="Per round and side.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--needs", type=int, default=300, help="Searches per round and side.")
    parser.add_argument("--seed-scale", type=float, default=1.0, help="With --own.")
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
