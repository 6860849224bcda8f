"""No double booking across real worker processes, and expiry that runs exactly once.

The first test starts the real server (``places run --workers 2``) on the test database and
sends 100 concurrent holds for one free place over HTTP. The others race expiry passes on
separate connections, and check the background expiry task of the running app.
"""

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.holds.expiry import expire_due
from loadtests.harness import ServiceProcess
from tests.support.checks import assert_one_truth, snapshot
from tests.support.factories import dept, hold, new_request, new_unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(database: str) -> Iterator[ServiceProcess]:
    """The API as deployed: ``places run`` with two worker processes on the test database."""
    service = ServiceProcess(database, os.environ["PLACES_REDIS_URL"], workers=2)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _worker_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.mark.server
@pytest.mark.timeout(180)  # starts places run with two workers first
async def test_100_concurrent_holds_on_the_last_place_through_two_workers(client, pool, server):
    unit = await new_unit(client, pool, available=1, installed=10)
    before = await snapshot(pool, unit["id"])
    requests = [await new_request(client) for _ in range(100)]
    headers = dept()
    assert len(_worker_pids(server.pid)) >= 2, "expected two uvicorn worker processes"
    async with httpx.AsyncClient(
        base_url=server.http, timeout=60, limits=httpx.Limits(max_connections=100)
    ) as http:

        async def attempt(request: dict) -> httpx.Response:
            return await http.post(
                "/v1/holds",
                json={"request_id": request["id"], "target": {"kind": "unit", "id": unit["id"]}},
                headers=headers,
            )

        results = await asyncio.gather(*(attempt(r) for r in requests))

    statuses = Counter(r.status_code for r in results)
    assert statuses == {201: 1, 409: 99}, statuses
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in results
        if r.status_code == 409
    )
    winner = next(r.json() for r in results if r.status_code == 201)

    after = await snapshot(pool, unit["id"])
    assert (after["available"], after["reserved"]) == (0, 1)
    assert after["version"] == before["version"] + 1
    await assert_one_truth(pool, unit["id"])
    ids = [uuid.UUID(r["id"]) for r in requests]
    async with pool.acquire() as conn:
        holds = await conn.fetch(
            "SELECT id, request_id, status FROM holds WHERE unit_id = $1", uuid.UUID(unit["id"])
        )
        statuses_by_request = Counter(
            r["status"]
            for r in await conn.fetch(
                "SELECT status FROM placement_requests WHERE id = ANY($1)", ids
            )
        )
        history = await conn.fetchval(
            "SELECT count(*) FROM request_events WHERE request_id = ANY($1)", ids
        )
        hold_events = await conn.fetchval(
            "SELECT count(*) FROM outbox_events WHERE type = 'hold.created'"
            " AND data->'target'->>'id' = $1",
            unit["id"],
        )
    assert [str(h["id"]) for h in holds] == [winner["id"]]
    assert statuses_by_request == {"held": 1, "waiting": 99}
    assert history == 100 + 1  # 100 × created, 1 × held: the losers wrote nothing
    assert hold_events == 1


async def _expiry_connection(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    from api.db import init_connection

    await init_connection(conn)
    return conn


async def test_two_expiry_passes_racing_expire_each_hold_once(client, pool, database):
    unit = await new_unit(client, pool, available=40, installed=40)
    before = await snapshot(pool, unit["id"])
    requests = [await new_request(client) for _ in range(30)]
    hold_ids = []
    for request in requests:
        r = await hold(client, request, "unit", unit["id"])
        assert r.status_code == 201
        hold_ids.append(uuid.UUID(r.json()["id"]))
    async with pool.acquire() as conn:
        # Due in 10 minutes: invisible to the app's own background pass, which uses the
        # real clock; the racing passes below expire "as of" 20 minutes from now.
        await conn.execute(
            "UPDATE holds SET expires_at = now() + interval '10 minutes' WHERE id = ANY($1)",
            hold_ids,
        )
        as_of = await conn.fetchval("SELECT now() + interval '20 minutes'")
    first, second = await _expiry_connection(database), await _expiry_connection(database)
    try:
        counts = await asyncio.gather(expire_due(first, as_of), expire_due(second, as_of))
    finally:
        await first.close()
        await second.close()
    assert sum(counts) >= len(hold_ids)  # (other tests' holds may be due as of then too)

    texts = [str(h) for h in hold_ids]
    async with pool.acquire() as conn:
        statuses = Counter(
            r["status"]
            for r in await conn.fetch("SELECT status FROM holds WHERE id = ANY($1)", hold_ids)
        )
        expired_events = await conn.fetch(
            "SELECT data->>'id' AS id, department, national_data FROM outbox_events"
            " WHERE type = 'hold.expired' AND data->>'id' = ANY($1::text[])",
            texts,
        )
        history = await conn.fetchval(
            "SELECT count(*) FROM request_events WHERE event = 'expired' AND hold_id = ANY($1)",
            hold_ids,
        )
        audits = await conn.fetch(
            "SELECT actor, role FROM audit_entries WHERE action = 'hold.expire'"
            " AND object_id = ANY($1::text[])",
            texts,
        )
        waiting = await conn.fetchval(
            "SELECT count(*) FROM placement_requests WHERE id = ANY($1) AND status = 'waiting'",
            [uuid.UUID(r["id"]) for r in requests],
        )
    assert statuses == {"expired": len(hold_ids)}
    assert sorted(e["id"] for e in expired_events) == sorted(texts)  # once each
    assert all("reason" not in e["national_data"] for e in expired_events)
    assert history == len(hold_ids)
    assert len(audits) == len(hold_ids)
    assert {(a["actor"], a["role"]) for a in audits} == {("system:expiry", "system")}
    assert waiting == len(requests)
    after = await snapshot(pool, unit["id"])
    assert (after["available"], after["reserved"]) == (before["available"], before["reserved"])
    assert after["version"] == before["version"] + 2 * len(hold_ids)
    assert after["declared_by"] == "system:expiry" and after["source"] == "expire"
    await assert_one_truth(pool, unit["id"])
    # Nothing left to do for a third pass.
    assert await expire_due(pool, as_of) == 0


async def test_expiry_and_release_racing_on_one_hold(client, pool):
    unit = await new_unit(client, pool, available=1)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"], expires_in_minutes=5)).json()
    async with pool.acquire() as conn:
        as_of = await conn.fetchval("SELECT now() + interval '6 minutes'")
    release, _ = await asyncio.gather(
        client.post(f"/v1/holds/{h['id']}/release", headers=dept()),
        expire_due(pool, as_of),
    )
    # Exactly one of them gave the place back; the other found nothing to do.
    async with pool.acquire() as conn:
        final = await conn.fetchval("SELECT status FROM holds WHERE id = $1", uuid.UUID(h["id"]))
        endings = await conn.fetchval(
            "SELECT count(*) FROM request_events WHERE hold_id = $1 AND event <> 'held'",
            uuid.UUID(h["id"]),
        )
    if release.status_code == 200:
        assert final == "released"
    else:
        assert release.status_code == 409 and final == "expired"
    assert endings == 1
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"]) == (1, 0)
    await assert_one_truth(pool, unit["id"])


async def test_background_expiry_releases_overdue_holds(client, pool):
    """The app's lifespan runs the expiry loop: an overdue hold comes back by itself."""
    unit = await new_unit(client, pool, available=1)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"], expires_in_minutes=1)).json()
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(h["id"]),
        )
    deadline = time.monotonic() + 15
    status = "held"
    while status == "held" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        r = await client.get(f"/v1/holds/{h['id']}", headers=dept())
        status = r.json()["status"]
    assert status == "expired"
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.json()["status"] == "waiting" and r.json()["hold"] is None
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"]) == (1, 0)
    r = await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())
    assert r.status_code == 409 and "expired" in r.json()["detail"]
