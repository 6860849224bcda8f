"""Benchmark: capacity declarations through HTTP on the national dataset.

Starts ``places run`` with N workers on a free port against the configured database (seeded),
then sends declarations from C concurrent connections for D seconds, each to a random unit
with a token of its own establishment, a fresh Idempotency-Key and valid counts. Prints
throughput and latency percentiles; and, in the same run, the raw database cost of the same
write transaction (no HTTP) so the ratio says where the time goes. Prints, never asserts.

    .venv/bin/python -m loadtests.bench_declarations --seconds 60 --workers 2 --concurrency 32
"""

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx

from api.auth import issue_token
from api.settings import get_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load_units(dsn: str, n: int) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT u.id::text, s.finess, u.installed
              FROM units u JOIN structures s ON s.id = u.structure_id
             ORDER BY random() LIMIT $1
            """,
            n,
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


async def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit("server did not become ready")


async def http_load(base: str, units, seconds: float, concurrency: int):
    tokens = {finess: issue_token("structure", finess=finess) for _, finess, _ in units}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds
    rng = random.Random(1)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            unit_id, finess, installed = rng.choice(units)
            occupied = rng.randint(0, installed)
            body = {
                "temporality": "current",
                "installed": installed,
                "occupied": occupied,
                "reserved": 0,
                "closed": 0,
                "available": installed - occupied,
            }
            headers = {
                "Authorization": f"Bearer {tokens[finess]}",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            t0 = time.perf_counter()
            r = await client.put(f"{base}/v1/units/{unit_id}/capacity", json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


async def raw_sql(dsn: str, units, n: int) -> list[float]:
    """The same transaction's statements straight on asyncpg, sequential, for the ratio."""
    from api.capacity.service import SNAPSHOT_COLUMNS

    conn = await asyncpg.connect(dsn)
    rng = random.Random(2)
    out = []
    try:
        for _ in range(n):
            unit_id, _finess, installed = rng.choice(units)
            uid = uuid.UUID(unit_id)
            occupied = rng.randint(0, installed)
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.fetchrow(
                    "SELECT u.id, s.finess, s.department FROM units u JOIN"
                    " structures s ON s.id = u.structure_id WHERE u.id = $1",
                    uid,
                )
                await conn.execute(
                    "INSERT INTO idempotency_keys (principal, key, request_hash)"
                    " VALUES ('bench', $1, 'x')",
                    str(uuid.uuid4()),
                )
                prev = await conn.fetchrow(
                    f"SELECT {SNAPSHOT_COLUMNS} FROM capacity_snapshots"
                    " WHERE unit_id = $1 AND temporality = 'current'"
                    " FOR UPDATE",
                    uid,
                )
                version = (prev["version"] if prev else 0) + 1
                await conn.execute(
                    """
                    INSERT INTO capacity_snapshots (unit_id, temporality, version, declared_at,
                        declared_by, source, installed, occupied, reserved, closed, available,
                        additional, available_gender)
                    VALUES ($1, 'current', $2, now(), 'bench', 'bench', $3, $4, 0, 0, $5, 0, 'any')
                    ON CONFLICT (unit_id, temporality) DO UPDATE SET version = EXCLUDED.version,
                        occupied = EXCLUDED.occupied, available = EXCLUDED.available,
                        installed = EXCLUDED.installed, reserved = 0, closed = 0, additional = 0
                    """,
                    uid,
                    version,
                    installed,
                    occupied,
                    installed - occupied,
                )
                await conn.execute(
                    "INSERT INTO capacity_declarations (unit_id, temporality, version, declared_at,"
                    " declared_by, source, installed, occupied, reserved, closed, available,"
                    " additional, available_gender) VALUES ($1, 'current', $2, now(), 'bench',"
                    " 'bench', $3, $4, 0, 0, $5, 0, 'any')",
                    uid,
                    version,
                    installed,
                    occupied,
                    installed - occupied,
                )
                await conn.execute(
                    "INSERT INTO outbox_events (type, department, data,"
                    " national_data) VALUES ('bench', '69', '{}', '{}')"
                )
                await conn.execute(
                    "INSERT INTO audit_entries (actor, role, action, object_type,"
                    " object_id) VALUES ('bench', 'bench', 'b', 'unit', $1)",
                    unit_id,
                )
            out.append(time.perf_counter() - t0)
        await conn.execute("DELETE FROM outbox_events WHERE type = 'bench'")
    finally:
        await conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--units", type=int, default=5000)
    args = parser.parse_args()
    dsn = get_settings().database_url
    units = asyncio.run(load_units(dsn, args.units))
    if not units:
        raise SystemExit("no units: seed the database first (places seed)")
    port = free_port()
    env = {**os.environ, "PLACES_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "run", "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base))
        asyncio.run(http_load(base, units, 3, args.concurrency))  # warm-up
        latencies, statuses, elapsed = asyncio.run(
            http_load(base, units, args.seconds, args.concurrency)
        )
    finally:
        server.terminate()
        server.wait(10)
    raw = asyncio.run(raw_sql(dsn, units, 2000))
    ok = statuses.get(200, 0)
    ms = 1000
    print(
        f"declarations over HTTP: {args.workers} workers, {args.concurrency} connections, "
        f"{elapsed:.1f} s"
    )
    print(f"  accepted: {ok} ({ok / elapsed:.0f}/s)  statuses: {statuses}")
    print(
        f"  latency ms: p50 {percentile(latencies, 0.5) * ms:.1f}  "
        f"p95 {percentile(latencies, 0.95) * ms:.1f}  p99 {percentile(latencies, 0.99) * ms:.1f}"
    )
    print(
        f"raw SQL transaction (one connection, sequential): p50 "
        f"{statistics.median(raw) * ms:.2f} ms  p95 {percentile(raw, 0.95) * ms:.2f} ms"
    )
    print(
        f"ratio HTTP p50 / raw SQL p50: {percentile(latencies, 0.5) / statistics.median(raw):.1f}"
    )


if __name__ == "__main__":
    main()
