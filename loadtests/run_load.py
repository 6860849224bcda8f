"""Load test with thresholds: the three kinds of users at once, on the national dataset.

    .venv-dev/bin/python -m loadtests.run_load --workers 2 --users 60 --seconds 60

Steps, all in one command:

1. A private database: ``--database`` (default ``places_load``) is recreated as a copy of
   ``--template`` (default ``places_load_template``, created once with ``places seed`` when
   missing — nobody else connects to it, so the copy never waits for other sessions), then
   migrated. ``--reuse`` keeps an existing ``--database`` as it is. Nothing shared is written.
2. ``places run`` with ``--workers`` on a free port, that database and ``--redis-url``
   (default: a ``redis-server`` of its own, stopped after the run), its log in the run
   directory.
3. One declaration per active department (operator, counts unchanged) so that every feed has
   a position; once the relay published them, those positions are where the run starts.
4. ``locust`` headless (``loadtests/locustfile.py``) for ``--seconds`` plus ``--drain``
   (writers stop after ``--seconds``; dashboards keep listening), with ``--csv`` and
   ``--html`` into ``var/loadtest/<timestamp>/``, while each worker's RSS is sampled (psutil,
   and the kernel's high-water mark ``VmHWM``).
5. Events: *emitted* = outbox rows written during the run; *expected* = for each dashboard,
   every entry of its feed after the run's start position (a department feed carries that
   department's events, the national feed all but those about children — requests, holds:
   ``api.events.NOT_NATIONAL``), published at least ``GRACE`` seconds before the dashboard
   stopped; *lost* = expected and never received, plus emitted national events the national
   feed never got.
6. A summary (printed, and ``summary.json``): p50/p95/p99 per endpoint, statuses, errors,
   events, peak RSS per worker, and the thresholds. Exit status 1 when one is missed: any 5xx,
   any unexpected response, any lost event, search p95 > 100 ms, declaration p95 > 100 ms,
   a worker's peak RSS > 300 MB. The service is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis

from api.auth import ensure_local_keys, issue_token
from api.settings import get_settings
from loadtests.bench_search import random_needs, searcher
from loadtests.common import LOAD_TEMPLATE, prepare_database
from loadtests.harness import BENCH_LIMITS, ROOT, RedisServer, ServiceProcess

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
GRACE = 2.0
"""Seconds: an entry published this long before a dashboard stopped must have reached it."""
MB = 1024 * 1024

SEARCH = "POST /v1/search"
DECLARATIONS = ("PUT /v1/units/[id]/capacity", "PUT /v1/foster-carers/[id]/availability")


@dataclass(frozen=True)
class Limits:
    """The thresholds of issue #7, for the default mix."""

    search_p95_ms: float = 100.0
    declaration_p95_ms: float = 100.0
    worker_rss_mb: float = 300.0


# --------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class EndpointStats:
    endpoint: str
    """``METHOD name`` as locust reports it (``WS`` for the feeds)."""
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    rps: float


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:  # "N/A" when an endpoint has no request
        return None


def read_stats_csv(path: Path) -> dict[str, EndpointStats]:
    """locust's ``<prefix>_stats.csv``: one row per endpoint and the ``Aggregated`` row."""
    out: dict[str, EndpointStats] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            method, name = row["Type"].strip(), row["Name"].strip()
            key = name if name == "Aggregated" else f"{method} {name}"
            out[key] = EndpointStats(
                endpoint=key,
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50=_number(row["50%"]),
                p95=_number(row["95%"]),
                p99=_number(row["99%"]),
                rps=float(row["Requests/s"] or 0),
            )
    return out


@dataclass
class FeedAccount:
    dashboards: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    in_flight: int = 0
    """Published less than GRACE s before the dashboard stopped and not received: not lost."""
    duplicated: int = 0
    unknown: int = 0
    """Received but not in the feed after the start position (should never happen)."""
    caught_up: int = 0
    """Delivered from the feed's history after a (re)connection, not live."""
    closes: dict[str, int] = field(default_factory=dict)
    lost_samples: list[str] = field(default_factory=list)


def entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def account_feeds(
    dashboards: list[dict[str, Any]], streams: dict[str, list[str]], stopped_at: float
) -> FeedAccount:
    """Compare what each dashboard received with its feed's entries after the run's start
    position. ``streams``: per feed, the ids of its entries after that position, in order."""
    account = FeedAccount()
    cutoff = (stopped_at - GRACE) * 1000
    for d in dashboards:
        account.dashboards += 1
        account.caught_up += d.get("caught_up", 0)
        for code, n in d.get("closes", {}).items():
            account.closes[code] = account.closes.get(code, 0) + n
        entries = streams.get(d["feed"], [])
        if not d.get("start"):  # no start position: from the first event it saw
            first = d["ids"][0] if d["ids"] else None
            entries = entries[entries.index(first) :] if first in entries else []
        received = set(d["ids"])
        account.duplicated += len(d["ids"]) - len(received)
        known = set(entries)
        account.unknown += len(received - known)
        for entry_id in entries:
            if entry_id in received:
                account.expected += 1
                account.delivered += 1
            elif entry_ms(entry_id) <= cutoff:
                account.expected += 1
                account.lost += 1
                if len(account.lost_samples) < 10:
                    account.lost_samples.append(f"{d['feed']}:{entry_id}")
            else:
                account.in_flight += 1
    return account


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    limit: float
    passed: bool

    def line(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:g}"
        return f"  {'PASS' if self.passed else 'FAIL'}  {self.name}: {shown} (limit {self.limit:g})"


def evaluate(
    stats: dict[str, EndpointStats],
    statuses: dict[str, dict[str, int]],
    lost_events: int,
    worker_peaks_mb: dict[int, float],
    limits: Limits = Limits(),
) -> list[Check]:
    """Every threshold, passed or not. A figure that was not measured fails its check."""
    checks: list[Check] = []
    five_xx = sum(n for codes in statuses.values() for s, n in codes.items() if int(s) >= 500)
    checks.append(Check("5xx responses", five_xx, 0, five_xx == 0))
    total = stats.get("Aggregated")
    failures = total.failures if total else None
    checks.append(Check("unexpected responses (locust failures)", failures, 0, failures == 0))
    checks.append(Check("lost events", lost_events, 0, lost_events == 0))
    for endpoint, limit in (
        (SEARCH, limits.search_p95_ms),
        *((e, limits.declaration_p95_ms) for e in DECLARATIONS),
    ):
        entry = stats.get(endpoint)
        p95 = entry.p95 if entry else None
        checks.append(Check(f"{endpoint} p95 ms", p95, limit, p95 is not None and p95 <= limit))
    if not worker_peaks_mb:
        checks.append(Check("worker peak RSS MB (no worker sampled)", None, 0, False))
    for pid, peak in sorted(worker_peaks_mb.items()):
        checks.append(
            Check(
                f"worker {pid} peak RSS MB",
                round(peak, 1),
                limits.worker_rss_mb,
                peak <= limits.worker_rss_mb,
            )
        )
    return checks


def format_table(stats: dict[str, EndpointStats]) -> list[str]:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    lines = [
        f"  {'endpoint':<52} {'reqs':>7} {'fails':>5} {'p50':>6} {'p95':>6} {'p99':>6} {'/s':>6}"
    ]
    for key in sorted(stats, key=lambda k: (k == "Aggregated", k)):
        s = stats[key]
        lines.append(
            f"  {key:<52} {s.requests:>7} {s.failures:>5} {ms(s.p50):>6} {ms(s.p95):>6}"
            f" {ms(s.p99):>6} {s.rps:>6.1f}"
        )
    return lines


# --------------------------------------------------------------------------- database


async def build_fixture(dsn: str, departments: int) -> dict[str, Any]:
    """What the locust users pick from: the ``departments`` departments with the most units,
    their establishments, carers, communes (by population) and one unit each to prime the
    feeds with."""
    conn = await asyncpg.connect(dsn)
    try:
        codes = [
            r["department"]
            for r in await conn.fetch(
                """
                SELECT s.department FROM units u JOIN structures s ON s.id = u.structure_id
                 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $1
                """,
                departments,
            )
        ]
        structures = await conn.fetch(
            """
            SELECT DISTINCT s.finess, s.department FROM structures s
              JOIN units u ON u.structure_id = s.id
             WHERE s.department = ANY($1::text[]) ORDER BY 1
            """,
            codes,
        )
        carers = await conn.fetch(
            """
            SELECT c.id::text AS id, c.department, c.agrement_capacity,
                   coalesce((SELECT sum(h.places) FROM holds h WHERE h.carer_id = c.id
                                AND h.status IN ('held', 'admitted')), 0)::int AS taken
              FROM foster_carers c WHERE c.department = ANY($1::text[]) ORDER BY 1
            """,
            codes,
        )
        communes = await conn.fetch(
            """
            SELECT department, insee, population FROM (
                SELECT department, insee, population,
                       row_number() OVER (PARTITION BY department ORDER BY population DESC) AS n
                  FROM communes WHERE department = ANY($1::text[])) c
             WHERE n <= 300 ORDER BY department, population DESC
            """,
            codes,
        )
        # Feeds are per competent authority: those of the active departments (69 has two).
        primers = await conn.fetch(
            """
            SELECT DISTINCT ON (s.authority) s.authority, c.unit_id::text AS unit_id,
                   c.available
              FROM capacity_snapshots c JOIN units u ON u.id = c.unit_id
              JOIN structures s ON s.id = u.structure_id
             WHERE c.temporality = 'current' AND s.department = ANY($1::text[])
             ORDER BY s.authority, c.unit_id
            """,
            codes,
        )
    finally:
        await conn.close()
    by_department: dict[str, list[tuple[str, int]]] = {code: [] for code in codes}
    for r in communes:
        by_department[r["department"]].append((r["insee"], r["population"] or 0))
    return {
        "departments": codes,
        "authorities": [r["authority"] for r in primers],
        "structures": [dict(r) for r in structures],
        "carers": [dict(r) for r in carers],
        "communes": by_department,
        "primers": [dict(r) for r in primers],
    }


async def outbox_state(dsn: str) -> tuple[int, int]:
    """(highest outbox id, rows not yet published)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(max(id), 0) AS top,"
            " count(*) FILTER (WHERE published_at IS NULL) AS pending FROM outbox_events"
        )
    finally:
        await conn.close()
    return row["top"], row["pending"]


async def emitted_since(dsn: str, after: int) -> tuple[int, int]:
    """Outbox rows written after ``after``: all of them, and those for the national feed
    (every event but those about children, whose national payload is empty: api.events)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS emitted,"
            " count(*) FILTER (WHERE national_data <> '{}'::jsonb) AS national"
            " FROM outbox_events WHERE id > $1",
            after,
        )
        return row["emitted"], row["national"]
    finally:
        await conn.close()


def wait_published(dsn: str, timeout: float) -> int:
    """Wait for the relay to publish every outbox row; the rows still pending."""
    deadline = time.monotonic() + timeout
    while True:
        _, pending = asyncio.run(outbox_state(dsn))
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.3)


# --------------------------------------------------------------------------- feeds


def feed_key(feed: str) -> str:
    return f"places:feed:{feed}"


def newest_ids(client: redis.Redis, feeds: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for feed in feeds:
        entries = client.xrevrange(feed_key(feed), count=1)
        out[feed] = entries[0][0].decode() if entries else None
    return out


def stream_after(client: redis.Redis, feed: str, start: str | None) -> list[str]:
    """Ids of the feed's event entries after ``start`` (exclusive), in order."""
    ids: list[str] = []
    low = f"({start}" if start else "-"
    while True:
        batch = client.xrange(feed_key(feed), min=low, max="+", count=10_000)
        for entry_id, fields in batch:
            if fields.get(b"e"):  # not an anchor entry (see realtime.bus)
                ids.append(entry_id.decode())
        if len(batch) < 10_000:
            return ids
        low = f"({batch[-1][0].decode()}"


def prime_feeds(base: str, primers: list[dict[str, Any]]) -> None:
    """One unchanged declaration per authority (the platform operator): every feed gets an
    entry."""
    headers = {"Authorization": f"Bearer {issue_token('operator')}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for p in primers:
            r = client.put(
                f"/v1/units/{p['unit_id']}/capacity",
                json={"temporality": "current", "available": p["available"]},
                headers={"Idempotency-Key": f"load-prime-{uuid.uuid4()}"},
            )
            r.raise_for_status()


def warm_up(base: str, needs: list[dict[str, Any]], structures: list[dict[str, Any]]) -> None:
    """A freshly started worker plans its first queries and fills its caches: the run
    measures a warm service, as ``bench_search`` does (its first searches are 10x slower)."""
    with httpx.Client(base_url=base, timeout=60) as client:
        for need in needs:
            headers, body = searcher(need)  # the origin's authority searches, as in bench_search
            client.post("/v1/search", json=body, headers=headers).raise_for_status()
        for s in structures:
            token = issue_token("structure", finess=s["finess"])
            r = client.get("/ui/api/moi", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()


# --------------------------------------------------------------------------- service


def worker_processes(service: ServiceProcess) -> list[psutil.Process]:
    """The uvicorn master's worker processes (not multiprocessing's helpers); with one
    worker uvicorn serves in the master itself."""
    try:
        master = psutil.Process(service.pid)
        children = master.children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
    return out or [master]


def _vm_hwm(pid: int) -> float | None:
    """The kernel's peak resident set of a process, in bytes."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    return None


class RssSampler(threading.Thread):
    """Every ``every`` s: each worker's RSS and VmHWM; keeps each worker's peak."""

    def __init__(self, service: ServiceProcess, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.every = every
        self.peaks: dict[int, float] = {}
        self.stopped = threading.Event()

    def sample(self) -> None:
        for proc in worker_processes(self.service):
            with contextlib.suppress(psutil.Error):
                rss = float(proc.memory_info().rss)
                peak = max(rss, _vm_hwm(proc.pid) or 0.0)
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0.0), peak)

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.sample()

    def stop(self) -> dict[int, float]:
        self.sample()
        self.stopped.set()
        self.join(5)
        return {pid: peak / MB for pid, peak in self.peaks.items()}


# --------------------------------------------------------------------------- run


def run_locust(args: argparse.Namespace, base: str, out: Path, env: dict[str, str]) -> int:
    command = [
        sys.executable,
        *("-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
        *("--users", str(args.users), "--spawn-rate", str(args.spawn_rate)),
        *("--run-time", f"{int(args.seconds + args.drain)}s", "--stop-timeout", "0"),
        *("--host", base, "--csv", str(out / "locust"), "--html", str(out / "report.html")),
        *("--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING"),
    ]
    with (out / "locust.log").open("w") as log:
        return subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=args.seconds + args.drain + 300,
            check=False,
        ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=60, help="locust users (5:3:2 mix)")
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=60, help="load duration")
    parser.add_argument("--drain", type=float, default=5, help="dashboards listen on after")
    parser.add_argument("--departments", type=int, default=10, help="departments in play")
    parser.add_argument("--database", default="places_load")
    parser.add_argument("--template", default=LOAD_TEMPLATE)
    parser.add_argument("--scale", type=float, default=1.0, help="seed scale of a new template")
    parser.add_argument("--reuse", action="store_true", help="keep an existing --database")
    parser.add_argument(
        "--redis-url", default="", help="default: a redis-server of its own, for this run only"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest")
    args = parser.parse_args(argv)
    redis_server: RedisServer | None = None
    if not args.redis_url:
        redis_server = RedisServer()
        redis_server.start()
        args.redis_url = redis_server.url
    try:
        return _run(args)
    finally:
        if redis_server is not None:
            redis_server.stop()


def _run(args: argparse.Namespace) -> int:
    out = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    ensure_local_keys(settings)
    # The service, locust and this process sign and check tokens with the same local keys.
    os.environ["PLACES_KEYS_DIR"] = str(settings.keys_dir.resolve())
    dsn = asyncio.run(
        prepare_database(settings.owner_dsn, args.database, args.template, args.scale, args.reuse)
    )
    data = asyncio.run(build_fixture(dsn, args.departments))
    feeds = [*data["authorities"], "national"]
    client = redis.Redis.from_url(args.redis_url)
    client.ping()

    service = ServiceProcess(
        dsn,
        args.redis_url,
        workers=args.workers,
        log_path=out / "server.log",
        PLACES_WS_PING_SECONDS="10",
        **BENCH_LIMITS,
    )
    sampler: RssSampler | None = None
    try:
        service.start(timeout=120)
        prime_feeds(service.http, data["primers"])
        warm_up(service.http, asyncio.run(random_needs(dsn, 40, seed=11)), data["structures"][:10])
        if wait_published(dsn, 30):
            raise SystemExit("the relay did not publish the priming events")
        start_outbox, _ = asyncio.run(outbox_state(dsn))
        data["start_ids"] = newest_ids(client, feeds)
        fixture_path = out / "fixture.json"
        fixture_path.write_text(json.dumps(data))
        results_path = out / "results.json"
        print(
            f"service: {args.workers} workers on {service.http}, Redis {args.redis_url};"
            f" locust: {args.users} users for {args.seconds:g} s (+{args.drain:g} s drain),"
            f" departments {', '.join(data['departments'])}",
            flush=True,
        )
        sampler = RssSampler(service)
        sampler.start()
        env = {
            **os.environ,
            "PLACES_LOAD_FIXTURE": str(fixture_path),
            "PLACES_LOAD_RESULTS": str(results_path),
            "PLACES_LOAD_SECONDS": str(args.seconds),
        }
        run_locust(args, service.http, out, env)
        peaks = sampler.stop()
        sampler = None
        pending = wait_published(dsn, 15)
    finally:
        if sampler is not None:
            sampler.stop()
        service.stop()

    if not results_path.exists():
        raise SystemExit(f"locust wrote no results; see {out / 'locust.log'}")
    results = json.loads(results_path.read_text())
    stats = read_stats_csv(out / "locust_stats.csv")
    emitted, national = asyncio.run(emitted_since(dsn, start_outbox))
    streams = {f: stream_after(client, f, data["start_ids"].get(f)) for f in feeds}
    relay_lost = max(0, national - len(streams["national"]))
    account = account_feeds(results["dashboards"], streams, results["stopped_at"])
    checks = evaluate(stats, results["statuses"], account.lost + relay_lost, peaks)

    summary = {
        "out": str(out),
        "args": {k: str(v) for k, v in vars(args).items()},
        "endpoints": {k: asdict(v) for k, v in stats.items()},
        "statuses": results["statuses"],
        "invalid_expected": results["invalid_expected"],
        "conflicts": results["conflicts"],
        "unexpected_samples": results["unexpected"][:20],
        "events": {
            "emitted": emitted,
            "unpublished": pending,
            "relay_lost": relay_lost,
            **asdict(account),
        },
        "worker_peak_rss_mb": {str(k): round(v, 1) for k, v in peaks.items()},
        "checks": [asdict(c) for c in checks],
        "passed": all(c.passed for c in checks),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nreport: {out}/report.html; CSV {out}/locust_stats.csv; summary {out}/summary.json")
    print("latency ms per endpoint (WS delivery: occurred_at -> receipt):")
    print("\n".join(format_table(stats)))
    print(f"statuses: {json.dumps(results['statuses'], sort_keys=True)}")
    print(
        f"invalid requests answered with the expected 4xx: {results['invalid_expected']};"
        f" 409 conflicts handled: {results['conflicts']}"
    )
    for sample in results["unexpected"][:5]:
        print(f"  unexpected: {sample}")
    print(
        f"events: emitted {emitted} (unpublished {pending}); {account.dashboards} dashboards:"
        f" expected {account.expected}, delivered {account.delivered}, lost {account.lost},"
        f" (of which caught up on connection {account.caught_up}),"
        f" in flight at stop {account.in_flight}, duplicated {account.duplicated},"
        f" unknown {account.unknown}; closes {account.closes}"
    )
    print(
        "worker peak RSS MB: " + ", ".join(f"{pid}: {mb:.1f}" for pid, mb in sorted(peaks.items()))
    )
    print("thresholds:")
    print("\n".join(c.line() for c in checks))
    print("PASSED" if summary["passed"] else "FAILED")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
