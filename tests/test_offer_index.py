"""The search's index of the free offer (#16, ``api.search.offer_index``) is never behind the
database: whatever wrote, however it committed, the next search's refresh sees it.

The answers it gives for each step are compared with the steps' SQL queries on the national
dataset (``test_search_national``); here: what brings it up to date — rows changed by any
writer (the service, a trigger, SQL by hand), a writer that commits after a refresh although
it began before, deletions, a TRUNCATE, a new day — and the bookkeeping of its slots."""

import dataclasses
import datetime

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.search import offer_index, repository
from api.search.offer_index import _Table
from matching import LADDER, Child, Need
from tests.support.factories import bearer, idem, make_structure
from tests.test_search import declare

pytestmark = pytest.mark.database

NEED = Need((Child(9 * 12, "F", frozenset()),), "durable")
STEP = LADDER[0].resolve(10)  # places free now within 10 km


async def hamlet(owner_pool) -> str:
    """A commune of the Rhône's own (69D) that no other test places anything near: a point in
    the Alps, far from every reference commune (no department added: the registry's tests
    list the departments)."""
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ('69997', 'Écart de test', '69', 10, 'geonames',"
            " ST_SetSRID(ST_MakePoint(7.10, 44.60), 4326)::geography, '69D')"
            " ON CONFLICT DO NOTHING"
        )
    return "69997"


async def declared_unit(client, pool, owner_pool, available: int) -> tuple[str, dict, str]:
    """A unit of the hamlet with ``available`` places declared free now: the commune, the
    structure (``make_structure``'s) and the unit's id."""
    here = await hamlet(owner_pool)
    s = await make_structure(pool, department="69", commune=here)
    await declare(client, s, 0, available)
    return here, s, str(s["unit_ids"][0])


async def found_units(conn: asyncpg.Connection, commune: str) -> dict[str, int]:
    """Unit id → free places now within 10 km of ``commune``, as a search's refresh sees them
    in ``conn``'s transaction."""
    origin = await repository.resolve_origin(conn, commune, None, None)
    assert origin is not None
    async with conn.transaction():
        index, now = await offer_index.current(conn)
        view = index.view(NEED, origin, now)
        return {o.id: o.free_places for o in view.step("unit", NEED, STEP, [], "stated", 120)}


async def test_a_writer_that_commits_after_a_refresh_is_seen_by_the_next(client, pool, owner_pool):
    """The changes are read by snapshot visibility, not by a counter taken before commit:
    a transaction that wrote before a refresh and commits after it is seen by the next one."""
    here, s, unit = await declared_unit(client, pool, owner_pool, 3)
    async with pool.acquire() as reader, pool.acquire() as writer:
        assert (await found_units(reader, here))[unit] == 3
        tx = writer.transaction()
        await tx.start()
        await writer.execute(
            "UPDATE capacity_snapshots SET available = 1, occupied = occupied + 2"
            " WHERE unit_id = $1 AND temporality = 'current'",
            s["unit_ids"][0],
        )
        assert (await found_units(reader, here))[unit] == 3  # not committed yet
        await tx.commit()
        assert (await found_units(reader, here))[unit] == 1


async def test_writes_by_sql_and_by_triggers_are_seen(client, pool, owner_pool):
    """A unit's ages changed by hand reach its snapshots through 0021's trigger, and the
    snapshots' own trigger (0023) marks them changed: the next search sees the new band."""
    here, s, unit = await declared_unit(client, pool, owner_pool, 2)
    async with pool.acquire() as conn:
        assert unit in await found_units(conn, here)
        async with owner_pool.acquire() as owner:
            await owner.execute(
                "UPDATE units SET age_min_months = 14 * 12, age_max_months = 17 * 12 + 11"
                " WHERE id = $1",
                s["unit_ids"][0],
            )
        assert unit not in await found_units(conn, here)  # a child of 9 no longer fits


async def test_a_deleted_offer_leaves_the_index(client, pool, owner_pool):
    """Deleted rows leave their key in ``offer_removals`` (a statement trigger): a unit's
    snapshots deleted are gone from the next search."""
    here, s, unit = await declared_unit(client, pool, owner_pool, 2)
    async with pool.acquire() as conn:
        assert unit in await found_units(conn, here)
        async with owner_pool.acquire() as owner:
            await owner.execute(
                "DELETE FROM capacity_snapshots WHERE unit_id = $1", s["unit_ids"][0]
            )
            removed = await owner.fetch(
                "SELECT kind, temporality FROM offer_removals WHERE offer_id = $1", unit
            )
        assert ("unit", "current") in {(r["kind"], r["temporality"]) for r in removed}
        assert unit not in await found_units(conn, here)


async def test_a_truncate_or_a_new_day_reloads_the_whole(client, pool, owner_pool):
    """A TRUNCATE leaves a row of kind ``all`` (its statement trigger; rolled back here, the
    suite shares the database); such a row, or a new day (carers are free as of today),
    makes the next refresh read everything again."""
    async with owner_pool.acquire() as owner:
        tx = owner.transaction()
        await tx.start()
        try:
            await owner.execute("TRUNCATE foster_carers CASCADE")
            kinds = await owner.fetch(
                "SELECT kind FROM offer_removals WHERE changed_xid = pg_current_xact_id()"
            )
        finally:
            await tx.rollback()
        assert {r["kind"] for r in kinds} == {"all"}
    async with pool.acquire() as conn:
        await found_units(conn, "69123")
        async with conn.transaction():
            index, _ = await offer_index.current(conn)
        before = index.reloads
        async with owner_pool.acquire() as owner:
            await owner.execute("INSERT INTO offer_removals (kind) VALUES ('all')")
        async with conn.transaction():
            again, _ = await offer_index.current(conn)
        assert again is index and index.reloads == before + 1
        index.today = datetime.date(2000, 1, 1)
        async with conn.transaction():
            await offer_index.current(conn)
        assert index.reloads == before + 2
        async with conn.transaction():
            await offer_index.current(conn)
        assert index.reloads == before + 2  # nothing new: a delta, not a reload


async def test_a_carer_on_leave_or_refilled_is_followed(client, pool, owner_pool):
    """A carer's availability through the API: proposed when free, gone on leave."""
    from tests.support.factories import make_carer

    here = await hamlet(owner_pool)
    carer = await make_carer(pool, department="69", commune=here)
    headers = {**bearer("carer", carer_id=str(carer)), **idem()}
    r = await client.put(
        f"/v1/foster-carers/{carer}/availability",
        headers=headers,
        json={"available_places": 2, "status": "active"},
    )
    assert r.status_code == 200, r.text

    async def carers() -> set[str]:
        async with pool.acquire() as conn:
            origin = await repository.resolve_origin(conn, here, None, None)
            assert origin is not None
            origin = dataclasses.replace(origin, searcher="69D")
            async with conn.transaction():
                index, now = await offer_index.current(conn)
                view = index.view(NEED, origin, now)
                return {o.id for o in view.step("carer", NEED, STEP, [], "stated", 120)}

    assert str(carer) in await carers()
    r = await client.put(
        f"/v1/foster-carers/{carer}/availability",
        headers={**bearer("carer", carer_id=str(carer)), **idem()},
        json={"available_places": 0, "status": "active"},
    )
    assert r.status_code == 200, r.text
    assert str(carer) not in await carers()


ROW = {
    "id": "u",
    "temporality": "current",
    "structure_id": "s",
    "structure_name": "MECS",
    "finess": "690000000",
    "category": "177",
    "commune": "69123",
    "available_gender": "any",
    "declared_at": 1.8e9,
    "department": "69",
    "free_places": 1,
    "age_min_months": 0,
    "age_max_months": 200,
    "sexes": ["F", "M"],
    "timings": ["durable"],
    "publics": ["mineur"],
    "formulas": ["enfant"],
    "disability_specialised": [],
    "disability_supported": [],
    "lat": 45.0,
    "lon": 4.0,
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30), st.integers(1, 5)), max_size=300))
def test_slots_follow_puts_and_removals(moves):
    """Whatever the order of puts and removals, each live slot holds its key's last row, and
    the slots live are exactly the keys present (freed slots are reused, arrays grow)."""
    index = offer_index.OfferIndex()
    table = _Table("unit")
    model: dict[tuple[str, str], int] = {}
    for put, n, places in moves:
        key = (f"u{n}", "current")
        if put:
            table.put(key, {**ROW, "id": key[0], "free_places": places}, index)
            model[key] = places
        else:
            table.remove(key)
            model.pop(key, None)
    assert set(table.slot) == set(model)
    live = {i for i in range(table.size) if table.col["live"][i]}
    assert live == set(table.slot.values())
    for key, i in table.slot.items():
        assert table.col["places"][i] == model[key] and table.ids[i] == key[0]
    assert table.size <= len(model) + len(table.vacant)
