"""Every event carries its competent authority (#13): in its outbox row, which decides the
feed it goes to, and in both payloads. Which one: the structure's for ``capacity.updated``
and ``structure.*``, the carer's for ``carer.availability_updated``, the request's for
``request.*`` and the hold events (which also name their target's)."""

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from api.requests.service import local_today
from geo.finess import make_finess
from tests.support.factories import (
    bearer,
    idem,
    make_carer,
    new_unit,
    request_body,
    structure_body,
)

CORSE = bearer("department", authority="20R")
OPERATOR = bearer("operator")
CHILD_LEVEL = {"children", "reference", "origin", "measure", "reason"}


async def outbox(pool: asyncpg.Pool, since: int, *about: str) -> list[asyncpg.Record]:
    """The events written after ``since`` about these ids (other tests' holds may expire
    meanwhile)."""
    async with pool.acquire() as conn:
        return await conn.fetch(
            """
            SELECT id, type, department, authority, data, national_data FROM outbox_events
             WHERE id > $1
               AND (data->>'id' = ANY($2::text[]) OR data->>'request_id' = ANY($2::text[])
                    OR data->>'unit_id' = ANY($2::text[])
                    OR data->>'structure_id' = ANY($2::text[]))
             ORDER BY id
            """,
            since,
            list(about),
        )


async def last_id(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox_events")


def corsican_request(commune: str, department: str) -> dict[str, Any]:
    decided = local_today(department) - timedelta(days=2)
    return request_body(
        department=department,
        origin={"commune": commune},
        measure={"kind": "judicial", "decided_on": decided.isoformat()},
        reference=f"ASE20R-{uuid.uuid4().hex[:8]}",
    )


def assert_carries(row: asyncpg.Record, authority: str, department: str) -> None:
    """The row and its payloads name the authority; an event about children has no national
    payload at all (#18: not on the national feed)."""
    assert (row["authority"], row["department"]) == (authority, department), row["type"]
    assert row["data"]["authority"] == authority
    if row["type"].startswith(("request.", "hold.")):
        assert row["national_data"] == {}, row["type"]
    else:
        assert row["national_data"]["authority"] == authority


async def test_a_corsican_hold_on_a_lyon_unit(client, pool):
    """A request from Ajaccio (2A) holds a place in Lyon (69M): the request's events and the
    hold's belong to 20R, the unit's capacity to 69M; the hold names both sides."""
    unit = await new_unit(client, pool, available=2)
    since = await last_id(pool)
    r = await client.post(
        "/v1/requests", json=corsican_request("2A004", "2A"), headers={**CORSE, **idem()}
    )
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    r = await client.post(
        "/v1/holds",
        json={"request_id": request_id, "target": {"kind": "unit", "id": unit["id"]}},
        headers=CORSE,
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    r = await client.post(f"/v1/holds/{hold_id}/release", json={"reason": "x"}, headers=CORSE)
    assert r.status_code == 200, r.text

    rows = await outbox(pool, since, request_id, unit["id"])
    by_type: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
    assert set(by_type) == {
        "request.created",
        "capacity.updated",
        "request.updated",
        "hold.created",
        "hold.released",
    }
    for row in by_type["request.created"] + by_type["request.updated"]:
        assert_carries(row, "20R", "2A")
    for row in by_type["capacity.updated"]:
        assert_carries(row, "69M", "69")
        assert row["data"]["unit_id"] == unit["id"]
    for row in by_type["hold.created"] + by_type["hold.released"]:
        assert_carries(row, "20R", "2A")
        assert row["data"]["department"] == "2A" and row["data"]["target_department"] == "69"
        assert row["data"]["target_authority"] == "69M"
    for row in rows:  # the national feed still sees no child-level field
        assert not CHILD_LEVEL & set(row["national_data"]), row["type"]


async def test_a_bastia_request_belongs_to_corse_too(client, pool):
    since = await last_id(pool)
    r = await client.post(
        "/v1/requests", json=corsican_request("2B033", "2B"), headers={**CORSE, **idem()}
    )
    assert r.status_code == 201, r.text
    (row,) = await outbox(pool, since, r.json()["id"])
    assert row["type"] == "request.created"
    assert_carries(row, "20R", "2B")


async def test_a_structure_of_the_rhone_outside_lyon(client, pool):
    """Registered in Villefranche-sur-Saône: 69D, not 69M; its new unit's event too."""
    since = await last_id(pool)
    finess = make_finess("69", 700_000 + uuid.uuid4().int % 99_999)
    r = await client.post(
        "/v1/structures", json=structure_body(finess, commune="69264"), headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    structure_id = r.json()["id"]
    unit = structure_body(finess)["units"][0] | {"name": "Les Petits", "age_min": 3}
    r = await client.post(
        f"/v1/structures/{structure_id}/units", json=unit, headers={**OPERATOR, **idem()}
    )
    assert r.status_code == 201, r.text
    created, updated = await outbox(pool, since, structure_id)
    assert (created["type"], updated["type"]) == ("structure.created", "structure.updated")
    assert_carries(created, "69D", "69")
    assert_carries(updated, "69D", "69")


async def test_a_carer_in_alsace(client, pool):
    carer_id = await make_carer(pool, department="67", commune="67482")
    since = await last_id(pool)
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        json={"available_places": 1, "status": "active"},
        headers=bearer("carer", carer_id=str(carer_id)),
    )
    assert r.status_code == 200, r.text
    (row,) = await outbox(pool, since, str(carer_id))
    assert row["type"] == "carer.availability_updated"
    assert_carries(row, "6AE", "67")
