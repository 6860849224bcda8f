"""Benchmark: live feeds end to end — declaration → outbox → relay → Redis → hub → WebSocket.

Starts ``places run`` with 2 workers on a free port against a private copy of the seeded
dataset (``--database``, default ``places_bench_feeds``, recreated from the load test's
template, which is seeded once when missing: the command works on a fresh machine), connects
1,000 WebSocket clients spread over 100 department feeds (10 each) plus 20 on the national
feed, then sends 100 capacity declarations per second for 30 s to units of those
departments. Prints, from one run:

- delivery latency per event and client, from the event's ``occurred_at`` (the declaring
  transaction's timestamp, taken just before its commit, so an upper bound of
  commit → receipt) to its receipt by the client: p50, p99, max;
- in the same run, the raw Redis latency of ``XADD`` → ``XREAD BLOCK`` on a probe stream,
  the floor any Redis-based fan-out pays;
- events lost (declared, answered 200, never received by a client of that feed),
  duplicated, or out of order, over every client; close codes seen and resumes.

Clients resume with ``last_event_id`` after any close, like ``places feed``. Prints, never
asserts. Everything runs on one machine: the clients' own event loop is part of the figure.

    .venv-dev/bin/python -m loadtests.bench_feeds --seconds 30 --rate 100
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue_token
from api.db import drop_database
from api.settings import get_settings
from loadtests.common import LOAD_TEMPLATE, percentile, prepare_database
from loadtests.harness import BENCH_LIMITS, RedisServer, ServiceProcess
from realtime.relay import LOCK_ID

PING = '{"type":"ping"}'


def raise_nofile() -> int:
    """1,000+ sockets here and ~500 per worker (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


Expected = dict[str, dict[tuple[str, int], float]]
"""Per department, the (unit id, version) of every accepted declaration and when its 200
came back (time.time())."""


@dataclass
class Unit:
    id: str
    finess: str
    installed: int
    department: str


async def load_targets(dsn: str, feeds: int) -> tuple[list[str], dict[str, list[Unit]]]:
    """The ``feeds`` competent authorities with the most units, and their units (a unit's
    ``department`` field names its feed: its structure's authority)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT u.id::text AS id, s.finess, u.installed, s.authority AS department
              FROM units u JOIN structures s ON s.id = u.structure_id
             WHERE u.installed > 0
               AND s.authority IN (SELECT s2.authority FROM units u2
                                      JOIN structures s2 ON s2.id = u2.structure_id
                                     GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $1)
            """,
            feeds,
        )
    finally:
        await conn.close()
    units: dict[str, list[Unit]] = {}
    for r in rows:
        units.setdefault(r["department"], []).append(
            Unit(r["id"], r["finess"], r["installed"], r["department"])
        )
    return sorted(units), units


@dataclass(eq=False)
class FeedClient:
    """One WebSocket client; keeps raw messages with their receipt time, parsed afterwards
    so that the measuring loop does as little as possible."""

    url: str
    token: str
    department: str | None
    compression: str | None
    messages: list[tuple[float, str]] = field(default_factory=list)
    closes: Counter[int | None] = field(default_factory=Counter)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    last_id: str | None = None

    def _last_event_id(self) -> str | None:
        for _, raw in reversed(self.messages):
            if raw != PING:
                return str(json.loads(raw)["id"])
        return self.last_id

    async def run(self, stop: asyncio.Event, gate: asyncio.Semaphore) -> None:
        while not stop.is_set():
            url = self.url
            self.last_id = self._last_event_id()
            if self.last_id:
                url += f"?last_event_id={self.last_id}"
            try:
                async with gate:
                    ws = await connect(
                        url,
                        additional_headers={"Authorization": f"Bearer {self.token}"},
                        proxy=None,
                        compression=self.compression,
                        open_timeout=30,
                        max_queue=None,
                    )
                async with ws:
                    append, clock = self.messages.append, time.time
                    async for raw in ws:
                        append((clock(), str(raw)))
                        if raw == PING:
                            self.subscribed.set()
                self.closes[1000] += 1
            except ConnectionClosed as exc:
                self.closes[exc.rcvd.code if exc.rcvd else None] += 1
            except (OSError, TimeoutError) as exc:
                self.closes[-1] += 1
                print(f"connect failed: {exc!r}", file=sys.stderr)
            if not stop.is_set():
                await asyncio.sleep(0.2)


async def redis_probe(url: str, stop: asyncio.Event, every: float) -> list[float]:
    """XADD a timestamp every ``every`` s on a probe stream; XREAD BLOCK it; latencies (s)."""
    key = f"places:bench:probe:{uuid.uuid4().hex[:8]}"
    writer, reader = aioredis.from_url(url), aioredis.from_url(url)
    latencies: list[float] = []

    async def read() -> None:
        last = "$"
        while not stop.is_set():
            reply = await reader.xread({key: last}, block=500, count=100)
            now = time.time()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    latencies.append(now - float(fields[b"t"]))
                    last = entry_id

    task = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    try:
        while not stop.is_set():
            await writer.xadd(key, {"t": repr(time.time())}, maxlen=1000)
            await asyncio.sleep(every)
        await asyncio.sleep(0.6)
    finally:
        stop.set()
        await task
        await writer.delete(key)
        await writer.aclose()
        await reader.aclose()
    return latencies


def declare_load_in_process(
    base: str, units: dict[str, list[Unit]], seconds: float, rate: float
) -> tuple[Expected, Counter[int], list[float], float]:
    """The load runs in a process of its own, so that the measuring loop (clients, probe)
    is not slowed down by the HTTP client's work."""
    return asyncio.run(declare_load(base, units, seconds, rate))


async def declare_load(
    base: str, units: dict[str, list[Unit]], seconds: float, rate: float
) -> tuple[Expected, Counter[int], list[float], float]:
    """``rate`` declarations per second, open loop (a slow answer does not slow the rate)."""
    rng = random.Random(5)
    flat = [u for us in units.values() for u in us]
    tokens = {u.finess: issue_token("structure", finess=u.finess) for u in flat}
    expected: Expected = {d: {} for d in units}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    # Requests wait here, not in httpx's pool: a pool with thousands of queued requests
    # costs the client more CPU than the server spends answering them.
    in_flight = asyncio.Semaphore(16)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(unit: Unit) -> None:
            occupied = unit.installed - (rng.random() < 0.1)  # keeps ~95 % occupancy
            body = {
                "temporality": "current",
                "installed": unit.installed,
                "occupied": occupied,
                "reserved": 0,
                "closed": 0,
                "additional": 0,
                "available": unit.installed - occupied,
            }
            headers = {
                "Authorization": f"Bearer {tokens[unit.finess]}",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            try:
                async with in_flight:
                    start = time.perf_counter()
                    r = await client.put(
                        f"/v1/units/{unit.id}/capacity", json=body, headers=headers
                    )
            except httpx.HTTPError:
                statuses[-1] += 1
                return
            latencies.append(time.perf_counter() - start)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                expected[unit.department][(unit.id, r.json()["version"])] = time.time()

        tasks: set[asyncio.Task[None]] = set()
        begin = time.perf_counter()
        n = int(seconds * rate)
        for i in range(n):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(rng.choice(flat)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return expected, statuses, latencies, elapsed


def analyse(clients: list[FeedClient], expected: Expected) -> dict[str, Any]:
    everything = {pair: t for by_unit in expected.values() for pair, t in by_unit.items()}
    lost = duplicated = disordered = foreign = delivered = 0
    latencies: dict[str, list[float]] = {"department": [], "national": [], "after_200": []}
    for c in clients:
        want = everything if c.department is None else expected.get(c.department, {})
        seen: Counter[tuple[str, int]] = Counter()
        last_key: tuple[int, ...] | None = None
        for received_at, raw in c.messages:
            if raw == PING:
                continue
            event = json.loads(raw)
            key = tuple(int(p) for p in event["id"].split("-"))
            if last_key is not None and key <= last_key:
                disordered += 1
            last_key = key
            pair = (event["data"].get("unit_id"), event["data"].get("version"))
            if pair not in want:
                foreign += 1
                continue
            seen[pair] += 1
            delivered += 1
            occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
            kind = "national" if c.department is None else "department"
            latencies[kind].append(received_at - occurred)
            latencies["after_200"].append(received_at - want[pair])
        lost += len(want.keys() - seen.keys())
        duplicated += sum(n - 1 for n in seen.values() if n > 1)
    return {
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "disordered": disordered,
        "foreign": foreign,
        "latencies": latencies,
    }


def report(
    clients: list[FeedClient],
    expected: Expected,
    statuses: Counter[int],
    http_latencies: list[float],
    redis_latencies: list[float],
    elapsed: float,
) -> None:
    result = analyse(clients, expected)
    dept, nat = result["latencies"]["department"], result["latencies"]["national"]
    every = dept + nat
    total = sum(len(v) for v in expected.values())
    want = sum(len(expected[c.department]) if c.department else total for c in clients)
    closes = sum((c.closes for c in clients), Counter())
    ok = statuses.get(200, 0)
    ratio = percentile(every, 0.5) / max(percentile(redis_latencies, 0.5), 1e-9)

    def line(name: str, values: list[float]) -> str:
        return (
            f"  {name:<22} p50 {ms(values, 0.5)}  p99 {ms(values, 0.99)}"
            f"  max {ms(values, 1.0)}  n={len(values)}"
        )

    print()
    print(f"declarations: {ok} x 200 in {elapsed:.1f} s ({ok / elapsed:.0f}/s); {dict(statuses)}")
    print(line("HTTP PUT (ms)", http_latencies))
    print("delivery, occurred_at -> receipt (ms):")
    print(line("all clients", every))
    print(line("department feeds", dept))
    print(line("national feed", nat))
    print("  (the same, from the 200 reaching the declarer: negative when the event came first)")
    print(line("200 -> receipt", result["latencies"]["after_200"]))
    print("raw Redis, same run (ms):")
    print(line("XADD -> XREAD BLOCK", redis_latencies))
    print(f"  p50 delivery / p50 raw Redis: {ratio:.1f}x")
    print(
        f"events: expected {want}, delivered {result['delivered']}, lost {result['lost']},"
        f" duplicated {result['duplicated']}, out of order {result['disordered']}"
        f" (not ours: {result['foreign']})"
    )
    print(f"closes seen by clients: {dict(closes)}")


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:8.1f}"


async def relay_elsewhere(dsn: str) -> bool:
    """Whether another server's outbox relay holds its advisory lock on this database: it
    would publish the benchmark's events to its own Redis, not to ours."""
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                LOCK_ID,
            )
        )
    finally:
        await conn.close()


async def bench(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    dsn = await prepare_database(
        get_settings().owner_dsn, args.database, args.template, args.scale, args.reuse
    )
    if await relay_elsewhere(dsn):
        print(
            "warning: another server's outbox relay is active on this database and"
            " publishes to its own Redis: pass that Redis with --redis-url, or stop it.",
            file=sys.stderr,
        )
    redis_server: RedisServer | None = None
    server: ServiceProcess | None = None
    clients: list[FeedClient] = []
    try:
        redis_url = args.redis_url
        if not redis_url:
            redis_server = RedisServer()
            await redis_server.astart()
            redis_url = redis_server.url
        server = ServiceProcess(
            dsn,
            redis_url,
            workers=args.workers,
            PLACES_WS_PING_SECONDS=str(args.ping_seconds),
            **BENCH_LIMITS,
        )
        server.spawn()  # starts while the targets load
        base = server.http
        departments, units = await load_targets(dsn, args.feeds)
        await server.await_ready(timeout=120)
        print(
            f"server: {args.workers} workers on {base}, Redis {redis_url}, nofile {nofile};"
            f" {len(departments)} department feeds with {sum(map(len, units.values()))} units",
            flush=True,
        )
        ws_base = base.replace("http://", "ws://")
        compression = None if args.no_compression else "deflate"
        dept_tokens = {d: issue_token("department", authority=d) for d in departments}
        national_token = issue_token("national")
        for i in range(args.clients):
            d = departments[i % len(departments)]
            clients.append(
                FeedClient(f"{ws_base}/ws/authorities/{d}", dept_tokens[d], d, compression)
            )
        for _ in range(args.national):
            clients.append(FeedClient(f"{ws_base}/ws/national", national_token, None, compression))
        stop = asyncio.Event()
        gate = asyncio.Semaphore(50)
        started = time.perf_counter()
        tasks = [asyncio.create_task(c.run(stop, gate)) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in clients)), timeout=180)
        print(
            f"{len(clients)} clients subscribed in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        probe_stop = asyncio.Event()
        probe = asyncio.create_task(redis_probe(redis_url, probe_stop, 0.01))
        cpu0 = os.times()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            load = await asyncio.get_running_loop().run_in_executor(
                pool, declare_load_in_process, base, units, args.seconds, args.rate
            )
        expected, statuses, http_latencies, elapsed = load
        cpu_seconds = time.perf_counter() - t0
        cpu1 = os.times()
        probe_stop.set()
        redis_latencies = await probe

        # drain: until every client has what its feed should have, or 15 s
        deadline = time.monotonic() + 15
        total_expected = sum(len(v) for v in expected.values())
        while time.monotonic() < deadline:
            got = sum(1 for c in clients for _, raw in c.messages if raw != PING)
            want = sum(
                total_expected if c.department is None else len(expected[c.department])
                for c in clients
            )
            if got >= want:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        report(clients, expected, statuses, http_latencies, redis_latencies, elapsed)
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        print(f"clients' process CPU during the load: {cpu / cpu_seconds * 100:.0f}% of one core")
        print(f"server log: {server.log_path}")
    finally:
        if server is not None:
            await server.astop()
        if redis_server is not None:
            await redis_server.astop()
        if not args.reuse:
            await drop_database(dsn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database",
        default="places_bench_feeds",
        help="written into: a fresh copy of --template, dropped at the end",
    )
    parser.add_argument(
        "--template",
        default=LOAD_TEMPLATE,
        help="seeded database copied from (created with places seed when missing)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="seed scale of a new template")
    parser.add_argument(
        "--reuse", action="store_true", help="keep an existing --database, and keep it after"
    )
    parser.add_argument("--redis-url", default="", help="default: a redis-server of its own")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=1000, help="department feed clients")
    parser.add_argument("--feeds", type=int, default=100, help="department feeds")
    parser.add_argument("--national", type=int, default=20, help="national feed clients")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="declarations per second")
    parser.add_argument("--ping-seconds", type=float, default=3.0)
    parser.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(bench(args))
    else:
        uvloop.run(bench(args))


if __name__ == "__main__":
    main()
