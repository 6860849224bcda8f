"""Issue #14: an audit trail that cannot be rewritten.

The service's role (``places_app``, migration 0009) may only INSERT and SELECT the audit;
sealed, hash-chained segments make any later change by the owner visible to ``places audit
verify`` (naming the segment), and an external head catches a chain rewritten whole;
``places purge`` applies the retention periods, the audit by whole sealed segments only.

Seals and tampering run on a database of this module's own (``audit_db``), so the shared
one's trail stays whole; the role's privileges are checked on the shared one, which the
whole suite uses through that role.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.audit.service import chain_hash, seal, verify
from api.db import app_dsn, create_pool, drop_database
from api.main import create_app
from api.retention import purge
from api.settings import get_settings
from loadtests.harness import ROOT
from tests.support.database import create_fixture_database
from tests.support.env import BASE_DSN, TEST_DB
from tests.support.factories import dept, hold, idem, new_request, new_unit

pytestmark = pytest.mark.database

OWNER_DSN = f"{BASE_DSN}/{TEST_DB}_audit"
APP_DSN = app_dsn(OWNER_DSN)

SHARED_SERVER_WAIT = 60.0
"""How long a seal may wait for older transactions to end: the snapshot's horizon is the
whole PostgreSQL server's, which the suite shares with every other test's databases (a
template being seeded holds a transaction for seconds); ``None`` would only mean "later"."""


@dataclass
class AuditDb:
    owner: asyncpg.Pool
    app: asyncpg.Pool


@pytest.fixture(scope="module")
async def audit_db() -> AsyncIterator[AuditDb]:
    await create_fixture_database(OWNER_DSN)
    owner = await create_pool(OWNER_DSN, min_size=1, max_size=3)
    app = await create_pool(APP_DSN, min_size=1, max_size=3)
    try:
        yield AuditDb(owner, app)
    finally:
        await app.close()
        await owner.close()
        await drop_database(OWNER_DSN)


@pytest.fixture
async def fresh(audit_db: AuditDb) -> AuditDb:
    """The module's database with an empty trail and no seal (the owner may truncate)."""
    await audit_db.owner.execute("TRUNCATE audit_entries, audit_seals RESTART IDENTITY")
    return audit_db


async def write_entries(pool: asyncpg.Pool, n: int, authority: str = "69M") -> None:
    """``n`` entries written as the service writes them (its role, its template)."""
    from api.auth import Principal
    from api.changes import audit

    principal = Principal(sub="agent-test", role="department", authority=authority)
    async with pool.acquire() as conn:
        for i in range(n):
            await audit(
                conn, principal, "request.read", "placement_request", f"r{i}", "69",
                {"i": i}, authority=authority,
            )  # fmt: skip


# --- The service's role --------------------------------------------------------------------


async def test_the_suite_and_the_service_connect_as_places_app(pool, app):
    assert await pool.fetchval("SELECT current_user") == "places_app"
    assert await app.state.pool.fetchval("SELECT current_user") == "places_app"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET actor = 'someone-else'",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "UPDATE audit_seals SET hash = repeat('0', 64)",
        "DELETE FROM audit_seals",
        "TRUNCATE audit_seals",
        "INSERT INTO alembic_version VALUES ('9999')",
    ],
)
async def test_the_service_role_cannot_rewrite_the_audit(pool, statement):
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)


async def test_the_service_role_inserts_and_reads_the_audit_and_writes_the_rest(pool, client):
    async with pool.acquire() as conn, conn.transaction():
        new_id = await conn.fetchval(
            "INSERT INTO audit_entries (actor, role, action, object_type, object_id)"
            " VALUES ('t', 'admin', 'test', 'test', 'x') RETURNING id"
        )
        assert await conn.fetchval("SELECT count(*) FROM audit_entries WHERE id = $1", new_id)
        # Other tables: every write of the service (it updates outbox rows, deletes units).
        await conn.execute("UPDATE outbox_events SET published_at = published_at WHERE false")
        await conn.execute("DELETE FROM idempotency_keys WHERE false")
    # And the service as a whole: an audited write and an audited read through the API.
    request = await new_request(client)
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.status_code == 200, r.text


# --- Seals ---------------------------------------------------------------------------------


async def test_an_intact_trail_verifies_and_its_head_is_in_the_chain(fresh):
    await write_entries(fresh.app, 5)
    async with fresh.app.acquire() as conn:
        first = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
        assert first is not None and first.sealed_now == 1
        assert (first.segment, first.last_id) == (1, 5)
        await write_entries(fresh.app, 3)
        second = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
        assert second is not None and (second.segment, second.last_id) == (2, 8)
        again = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)  # nothing new: the same head
        assert again is not None and again.sealed_now == 0 and again.hash == second.hash
        await write_entries(fresh.app, 2)  # not sealed yet
        result = await verify(conn, first.hash)
    assert result.ok, result.problems
    assert (result.segments, result.entries, result.unsealed) == (2, 8, 2)
    assert result.head is not None and result.head.hash == second.hash


async def test_an_updated_entry_fails_verify_naming_its_segment(fresh):
    await write_entries(fresh.app, 4)
    async with fresh.app.acquire() as conn:
        assert await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
        await write_entries(fresh.app, 4)
        assert await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
    await fresh.owner.execute("UPDATE audit_entries SET actor = 'nobody' WHERE id = 6")
    async with fresh.app.acquire() as conn:
        result = await verify(conn)
    assert not result.ok
    assert result.problems == ["segment 2 (entries 5–8): entries changed since sealed"]


async def test_a_deleted_entry_fails_verify(fresh):
    await write_entries(fresh.app, 4)
    async with fresh.app.acquire() as conn:
        assert await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
    await fresh.owner.execute("DELETE FROM audit_entries WHERE id = 2")
    async with fresh.app.acquire() as conn:
        result = await verify(conn)
    assert result.problems == [
        "segment 1 (entries 1–4): 3 entries now, 4 when sealed (entries deleted or inserted)"
    ]


async def test_a_chain_rewritten_whole_fails_against_the_head_kept_outside(fresh):
    """The owner changes an entry and recomputes every seal after it: the chain is
    consistent again, but the head printed before is no longer in it."""
    await write_entries(fresh.app, 3)
    async with fresh.app.acquire() as conn:
        kept = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
    assert kept is not None
    await fresh.owner.execute("UPDATE audit_entries SET detail = '{}' WHERE id = 1")
    async with fresh.owner.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL timezone = 'UTC'")
        from api.audit import repository

        entries, digest = await repository.rows_digest(conn, 1, 3)
        forged = chain_hash("0" * 64, 1, 1, 3, entries, digest)
        await conn.execute(
            "UPDATE audit_seals SET rows_digest = $1, hash = $2 WHERE segment = 1", digest, forged
        )
    async with fresh.app.acquire() as conn:
        assert (await verify(conn)).ok  # consistent in itself…
        result = await verify(conn, kept.hash)  # …but not the chain whose head was kept
    assert len(result.problems) == 1 and result.problems[0].startswith(f"head {kept.hash}")


async def test_a_nullable_column_added_later_keeps_old_digests(fresh):
    """Another migration adds columns to the audit (#14: person, function): the canonical
    form strips nulls, so the entries sealed before keep their digest."""
    await write_entries(fresh.app, 3)
    async with fresh.app.acquire() as conn:
        assert await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
    await fresh.owner.execute("ALTER TABLE audit_entries ADD COLUMN person_test varchar")
    try:
        async with fresh.app.acquire() as conn:
            assert (await verify(conn)).ok
    finally:
        await fresh.owner.execute("ALTER TABLE audit_entries DROP COLUMN person_test")


async def test_an_id_taken_by_a_transaction_still_open_is_not_sealed_past(fresh):
    """A read's transaction writes its entry first and commits later: the seal waits for it
    (or tries again later) rather than sealing the ids around the hole."""
    await write_entries(fresh.app, 2)
    slow = await asyncpg.connect(APP_DSN)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute(
            "INSERT INTO audit_entries (actor, role, action, object_type, object_id)"
            " VALUES ('slow', 'department', 'request.read', 'placement_request', 'x')"
        )  # id 3, not committed
        await write_entries(fresh.app, 1)  # id 4, committed
        async with fresh.app.acquire() as conn:
            assert await seal(conn, settle=0, wait=0.3) is None
            assert await fresh.app.fetchval("SELECT count(*) FROM audit_seals") == 0
            await tx.commit()
            head = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
            assert head is not None and head.last_id == 4
            assert (await verify(conn)).ok
    finally:
        await slow.close()


async def test_places_audit_seal_and_verify_commands(fresh):
    await write_entries(fresh.app, 3)
    env = {**os.environ, "PLACES_DATABASE_URL": APP_DSN}

    def places(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    sealed = await asyncio.to_thread(places, "audit", "seal")
    assert sealed.returncode == 0, sealed.stderr
    [line] = sealed.stdout.splitlines()
    head = line.rsplit(" ", 1)[-1]
    assert line == f"segment 1 · last entry 3 · head {head}" and len(head) == 64
    ok = await asyncio.to_thread(places, "audit", "verify", "--head", head)
    assert ok.returncode == 0, ok.stderr
    assert "audit chain intact" in ok.stderr
    await fresh.owner.execute("UPDATE audit_entries SET role = 'admin' WHERE id = 2")
    bad = await asyncio.to_thread(places, "audit", "verify", "--head", head)
    assert bad.returncode == 1
    assert "TAMPERED: segment 1 (entries 1–3): entries changed since sealed" in bad.stderr


# --- Retention -----------------------------------------------------------------------------


@pytest.fixture
async def audit_client(fresh: AuditDb) -> AsyncIterator[httpx.AsyncClient]:
    """The app served on the module's database (as places_app), background seals off."""
    settings = get_settings().model_copy(
        update={"database_url": APP_DSN, "audit_seal_interval_seconds": 0}
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


def by_kind(results: list[Any]) -> dict[str, int]:
    return {r.kind: r.rows for r in results}


async def test_purge_applies_each_retention_and_the_audit_by_sealed_segments(fresh, audit_client):
    client, owner = audit_client, fresh.owner
    # Real data through the API: a request held, released and cancelled (closed), one still
    # waiting; a unit declared twice; their events, keys and audit entries.
    unit = await new_unit(client, owner)
    closed = await new_request(client)
    r = await hold(client, closed, "unit", unit["id"])
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/holds/{r.json()['id']}/release", headers=dept(), json={"reason": "test"}
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/requests/{closed['id']}/cancel", headers=dept(), json={"reason": "test"}
    )
    assert r.status_code == 200, r.text
    waiting = await new_request(client)
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers={**unit["headers"], **idem()},
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 200, r.text
    async with fresh.app.acquire() as conn:
        head = await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)
    assert head is not None and head.last_id is not None
    await write_entries(fresh.app, 2)  # after the seal: never purged
    settings = get_settings()
    now = await owner.fetchval("SELECT now()")

    async with owner.acquire() as conn:
        assert by_kind(await purge(conn, settings, dry_run=True, now=now)) == dict.fromkeys(
            ("audit", "requests", "declarations", "outbox", "idempotency"), 0
        )
        later = now + timedelta(days=800)  # past every default period
        # The app's relay would otherwise publish the unpublished event before the plan or
        # between the plan and the purge (once seen: 10 planned for 9): hold it off.
        async with conn.transaction():
            await conn.execute("LOCK TABLE outbox_events IN EXCLUSIVE MODE")
            # Every event published but the last (the relay of this app may have published
            # some).
            await conn.execute(
                "UPDATE outbox_events SET published_at = CASE WHEN id = (SELECT max(id) FROM"
                " outbox_events) THEN NULL ELSE coalesce(published_at, now()) END"
            )
            planned = await purge(conn, settings, dry_run=True, now=later)
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM audit_entries) AS audit,"
                " (SELECT count(*) FROM outbox_events) AS outbox,"
                " (SELECT count(*) FROM idempotency_keys) AS keys,"
                " (SELECT count(*) FROM capacity_declarations) AS declarations"
            )
            assert by_kind(planned) == {
                "audit": head.last_id,
                "requests": 1,
                "declarations": counts["declarations"] - 1,  # the unit's latest stays
                "outbox": counts["outbox"] - 2,  # the last published and the unpublished stay
                "idempotency": counts["keys"],
            }
            assert await conn.fetchval("SELECT count(*) FROM audit_entries") == counts["audit"]
            done = await purge(conn, settings, dry_run=False, now=later)
    assert by_kind(done) == by_kind(planned)
    assert [r.detail for r in done if r.kind == "requests"] == [
        "4 history row(s), 1 hold(s), 1 situation(s)"
    ]  # created, held, released, cancelled; its situation (inconnu since creation)
    remaining = await owner.fetch("SELECT id, status FROM placement_requests")
    assert [(str(r["id"]), r["status"]) for r in remaining] == [(waiting["id"], "waiting")]
    assert await owner.fetchval("SELECT count(*) FROM audit_entries") == 2  # the unsealed
    assert await owner.fetchval("SELECT count(*) FROM capacity_declarations") == 1
    async with fresh.app.acquire() as conn:
        result = await verify(conn, head.hash)
        assert result.ok, result.problems
        assert (result.checkpoint, result.purged, result.unsealed) == (head.segment, 1, 2)
        # The chain goes on from the checkpoint.
        assert (await seal(conn, settle=0, wait=SHARED_SERVER_WAIT)) is not None
        assert (await verify(conn, head.hash)).ok
