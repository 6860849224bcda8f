"""A request whose database connection dies under it (#19: the primary restarting, failing
over, a backend terminated) gets a 503 with ``Retry-After`` — nothing was recorded, the
client may retry with the same Idempotency-Key — not a 500. Real PostgreSQL: the service's
backend is terminated while the request waits on a row lock."""

import asyncio
import uuid

import asyncpg

from tests.support.checks import snapshot
from tests.support.factories import bearer, idem, make_structure


async def _blocked_by(conn: asyncpg.Connection, blocker: int) -> int:
    """The pid of the backend that waits on a lock ``blocker`` holds (the service's)."""
    for _ in range(200):
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1",
            blocker,
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("the request never waited on the lock")


async def test_a_declaration_whose_connection_dies_gets_503_and_records_nothing(
    client, pool, owner_pool
):
    s = await make_structure(pool, units=[{"installed": 4}])
    unit = s["unit_ids"][0]
    structure = bearer("structure", finess=s["finess"])
    r = await client.put(
        f"/v1/units/{unit}/capacity",
        headers={**structure, **idem()},
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 200, r.text
    before = await snapshot(pool, str(unit))
    key = f"lost-{uuid.uuid4().hex}"
    async with owner_pool.acquire() as blocker, owner_pool.acquire() as admin:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute(
            "SELECT 1 FROM capacity_snapshots WHERE unit_id = $1 FOR UPDATE", unit
        )
        declaring = asyncio.create_task(
            client.put(
                f"/v1/units/{unit}/capacity",
                headers={**structure, "Idempotency-Key": key},
                json={"temporality": "current", "available": 2},
            )
        )
        pid = await _blocked_by(admin, await blocker.fetchval("SELECT pg_backend_pid()"))
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        r = await asyncio.wait_for(declaring, 30)
        await lock.rollback()
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    assert "rien n'a été enregistré" in r.json()["detail"]
    assert await snapshot(pool, str(unit)) == before
    # The retry, with the same key, is the write's one acknowledgement.
    r = await client.put(
        f"/v1/units/{unit}/capacity",
        headers={**structure, "Idempotency-Key": key},
        json={"temporality": "current", "available": 2},
    )
    assert r.status_code == 200, r.text
    assert (await snapshot(pool, str(unit)))["available"] == 2
