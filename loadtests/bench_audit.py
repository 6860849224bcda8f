"""What the audit's seals cost (#14): sealing and verifying throughput, and the audit insert
rate of concurrent writers with and without a sealer running beside them (in one run).

    .venv-dev/bin/python -m loadtests.bench_audit [--entries 200000] [--writers 8]

Runs on a private database (``places_bench_audit_<pid>``, created, migrated, dropped), as
the service's role for writing, sealing and verifying — as deployed.
"""

import argparse
import asyncio
import os
import time

import asyncpg

from api.audit.service import seal, verify
from api.changes import _AUDIT_SQL
from api.db import app_dsn, create_pool, drop_database, ensure_database, migrate
from loadtests.common import server_database

ARGS = ("bench", "department", "request.read", "placement_request", "x", "69", {"i": 1}, "69M")


async def insert_rate(pool: asyncpg.Pool, writers: int, seconds: float, sealer: bool) -> float:
    """Audit inserts per second by ``writers`` concurrent connections, each one entry per
    transaction (as a read writes it), with or without a sealer sealing every 0.5 s."""
    stop = time.monotonic() + seconds
    done = 0

    async def writer() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                async with conn.transaction():
                    await conn.execute(_AUDIT_SQL, *ARGS)
                done += 1

    async def sealing() -> None:
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                await seal(conn, settle=0.05)
                await asyncio.sleep(0.5)

    tasks = [writer() for _ in range(writers)] + ([sealing()] if sealer else [])
    await asyncio.gather(*tasks)
    return done / seconds


async def main(args: argparse.Namespace) -> None:
    owner = server_database(f"places_bench_audit_{os.getpid()}")
    await ensure_database(owner)
    try:
        await asyncio.to_thread(migrate, owner)
        pool = await create_pool(app_dsn(owner), min_size=2, max_size=args.writers + 2)
        try:
            async with pool.acquire() as conn:
                await conn.executemany(_AUDIT_SQL, [ARGS] * args.entries)
                start = time.perf_counter()
                head = await seal(conn, settle=0)
                sealed = time.perf_counter() - start
                start = time.perf_counter()
                result = await verify(conn, head.hash if head else None)
                checked = time.perf_counter() - start
            assert result.ok, result.problems
            print(
                f"seal:   {args.entries} entries in {sealed:.2f} s"
                f" ({args.entries / sealed:,.0f} entries/s), {result.segments} segment(s)"
            )
            print(
                f"verify: {result.entries} entries in {checked:.2f} s"
                f" ({result.entries / checked:,.0f} entries/s)"
            )
            base = await insert_rate(pool, args.writers, args.seconds, sealer=False)
            with_sealer = await insert_rate(pool, args.writers, args.seconds, sealer=True)
            print(
                f"audit inserts/s, {args.writers} writers: {base:,.0f} without a sealer,"
                f" {with_sealer:,.0f} with one sealing every 0.5 s"
                f" ({(with_sealer - base) / base:+.1%})"
            )
        finally:
            await pool.close()
    finally:
        await drop_database(owner)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
