"""Benchmark: capacity declarations through HTTP on the national dataset.

Serves ``places run`` with N workers on a free port against ``PLACES_DATABASE_URL``
(seeded), then drives it with ``wrk`` (a C load generator, so the client does not steal the
server's CPU the way a Python client would): each request declares a random unit with a
token of its own establishment, a fresh Idempotency-Key and valid counts. Prints throughput
and latency percentiles and, in the same run, the cost of the same transaction's SQL
(the service's own statements, one connection, sequential) and the ratio. Prints only.

    .venv-dev/bin/python -m loadtests.bench_declarations --seconds 60 --workers 2 --connections 8
"""

import argparse
import asyncio
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from api.auth import issue_token
from api.capacity.repository import DECLARE_SQL, LOCK_SQL
from api.changes import CHANNEL
from api.db import init_connection
from loadtests.common import ensure_settings_database, percentile
from loadtests.harness import serve

LUA = """
units = {
%s
}
local counter = 0
math.randomseed(%d)
request = function()
  counter = counter + 1
  local u = units[math.random(#units)]
  -- about one declaration in ten frees a place: the dataset keeps its ~95 %% occupancy
  local free = 0
  if math.random() < 0.1 then free = 1 end
  local occ = math.max(0, u[3] - free)
  local body = string.format('{"temporality":"current","installed":%%d,"occupied":%%d,'
    .. '"reserved":0,"closed":0,"available":%%d}', u[3], occ, u[3] - occ)
  local headers = {}
  headers["Authorization"] = "Bearer " .. u[2]
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = string.format("bench-%%d-%%d-%%d", os.time(),
    math.random(1, 1000000000), counter)
  return wrk.format("PUT", "/v1/units/" .. u[1] .. "/capacity", headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d seconds=%%.3f non2xx=%%d errors=%%d "
    .. "p50=%%.3f p95=%%.3f p99=%%.3f\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


async def load_units(dsn: str, n: int) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT u.id::text, s.finess, u.installed
              FROM units u JOIN structures s ON s.id = u.structure_id
             ORDER BY u.id LIMIT $1
            """,
            n,
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


def lua_script(units: list[tuple[str, str, int]]) -> str:
    tokens: dict[str, str] = {}
    lines = []
    for unit_id, finess, installed in units:
        token = tokens.setdefault(finess, issue_token("structure", finess=finess))
        lines.append(f'  {{"{unit_id}", "{token}", {installed}}},')
    return LUA % ("\n".join(lines), 20261125)


def run_wrk(base: str, script: Path, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            shutil.which("wrk") or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


async def raw_sql(dsn: str, units: list[tuple[str, str, int]], n: int) -> list[float]:
    """The service's own statements (lock, idempotency claim, write), sequential."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    rng = random.Random(2)
    out = []
    try:
        for _ in range(n):
            unit_id, _finess, installed = rng.choice(units)
            uid = uuid.UUID(unit_id)
            occupied = installed - (rng.random() < 0.1)
            key = str(uuid.uuid4())
            t0 = time.perf_counter()
            async with conn.transaction():
                row = await conn.fetchrow(LOCK_SQL, uid, "current")
                await conn.fetchval(
                    "INSERT INTO idempotency_keys (principal, key, request_hash)"
                    " VALUES ('bench', $1, 'x') ON CONFLICT DO NOTHING RETURNING true",
                    key,
                )
                version = (row["prev_version"] or 0) + 1
                snapshot = {"version": version}
                await conn.execute(
                    DECLARE_SQL,
                    uid,
                    "current",
                    version,
                    row["now"],
                    "bench",
                    "bench",
                    installed,
                    occupied,
                    0,
                    0,
                    installed - occupied,
                    0,
                    "any",
                    "capacity.updated",
                    row["department"],
                    snapshot,
                    "bench",
                    "capacity.declare",
                    unit_id,
                    snapshot,
                    200,
                    snapshot,
                    "bench",
                    key,
                    CHANNEL,
                    row["authority"],
                    None,  # person id: a local role token names no person
                    None,  # function
                    None,  # the actor's authority (a structure acts for none)
                )
            out.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--units", type=int, default=5000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/setup installs it (Debian package wrk)")
    dsn = ensure_settings_database()
    units = asyncio.run(load_units(dsn, args.units))
    if not units:
        raise SystemExit("no units: seed the database first (places seed)")
    with tempfile.TemporaryDirectory() as tmp, serve(args.workers) as base:
        script = Path(tmp) / "declare.lua"
        script.write_text(lua_script(units))
        run_wrk(base, script, 5, args.connections)  # warm-up
        result = run_wrk(base, script, args.seconds, args.connections)
    raw = asyncio.run(raw_sql(dsn, units, 2000))
    rate = (result["requests"] - result["non2xx"]) / result["seconds"]
    print(
        f"declarations over HTTP: {args.workers} workers, {args.connections} connections "
        f"(wrk), {result['seconds']:.0f} s"
    )
    print(
        f"  accepted: {rate:.0f}/s ({result['requests']:.0f} requests, "
        f"{result['non2xx']:.0f} non-2xx, {result['errors']:.0f} socket errors)"
    )
    print(
        f"  latency ms: p50 {result['p50']:.1f}  p95 {result['p95']:.1f}  p99 {result['p99']:.1f}"
    )
    print(
        f"raw SQL of the same transaction (one connection, sequential): "
        f"p50 {statistics.median(raw) * 1000:.2f} ms  p95 {percentile(raw, 0.95) * 1000:.2f} ms"
    )
    print(f"ratio HTTP p50 / raw SQL p50: {result['p50'] / (statistics.median(raw) * 1000):.1f}")


if __name__ == "__main__":
    main()
