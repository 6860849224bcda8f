"""The one change path: the capacity hot path writes exactly the rows the generic helpers of
``api.changes`` write, and every event any writer puts in the outbox follows the schema of
``api.events``."""

import json
import re
import uuid
from typing import Any

from api import changes, events
from api.auth import Principal
from api.changes import Idempotency, Written
from geo.finess import make_finess
from tests.support.factories import (
    bearer,
    idem,
    make_carer,
    make_structure,
    request_body,
    structure_body,
)

# Columns that differ by construction between two writes: identity and clock.
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_IGNORED = {"id", "occurred_at", "key", "created_at", "published_at"}


def _comparable(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k not in _IGNORED}


async def test_declaration_hot_path_writes_the_rows_of_the_generic_path(client, pool):
    s = await make_structure(pool)
    unit_id = str(s["unit_ids"][0])
    key = str(uuid.uuid4())
    body = {"temporality": "current", "installed": 10, "occupied": 7, "available": 3}
    r = await client.put(
        f"/v1/units/{unit_id}/capacity",
        json=body,
        headers={**bearer("structure", finess=s["finess"]), "Idempotency-Key": key},
    )
    assert r.status_code == 200, r.text
    snapshot = r.json()
    async with pool.acquire() as conn:
        hot_event = await conn.fetchrow(
            "SELECT * FROM outbox_events WHERE type = 'capacity.updated'"
            " AND data->>'unit_id' = $1 ORDER BY id DESC LIMIT 1",
            unit_id,
        )
        hot_audit = await conn.fetchrow(
            "SELECT * FROM audit_entries WHERE action = 'capacity.declare' AND object_id = $1"
            " ORDER BY id DESC LIMIT 1",
            unit_id,
        )
        hot_key = await conn.fetchrow("SELECT * FROM idempotency_keys WHERE key = $1", key)
        principal = Principal(sub=hot_audit["actor"], role="structure", finess=s["finess"])
        assert hot_key["principal"] == principal.key

        # The same change through the generic helpers, in a transaction rolled back after
        # reading what it wrote.
        generic_key = str(uuid.uuid4())
        tx = conn.transaction()
        await tx.start()
        try:
            idempotency = Idempotency(generic_key, f"PUT /v1/units/{unit_id}/capacity")
            body_as_declared = {k: v for k, v in body.items() if v is not None}
            assert await changes.claim(conn, principal, idempotency, body_as_declared) is None
            event_id = await changes.emit(
                conn,
                events.capacity_updated(
                    hot_event["department"],
                    snapshot,
                    str(s["id"]),
                    s["finess"],
                    "api",
                    authority=hot_event["authority"],
                ),
            )
            await changes.audit(
                conn,
                principal,
                "capacity.declare",
                "unit",
                unit_id,
                hot_event["department"],
                {"temporality": "current", "version": snapshot["version"]},
                authority="69M",  # the structure's, in Lyon
            )
            await changes.store(conn, principal, idempotency, Written(snapshot))
            generic_event = await conn.fetchrow(
                "SELECT * FROM outbox_events WHERE id = $1", event_id
            )
            generic_audit = await conn.fetchrow(
                "SELECT * FROM audit_entries WHERE action = 'capacity.declare'"
                " AND object_id = $1 ORDER BY id DESC LIMIT 1",
                unit_id,
            )
            generic_key_row = await conn.fetchrow(
                "SELECT * FROM idempotency_keys WHERE key = $1", generic_key
            )
        finally:
            await tx.rollback()
    assert generic_audit["id"] != hot_audit["id"]
    assert hot_event["authority"] == "69M"  # the structure's, in Lyon
    assert hot_event["data"]["authority"] == "69M"
    assert hot_audit["authority"] == "69M"
    assert _comparable(generic_event) == _comparable(hot_event)
    assert _comparable(generic_audit) == _comparable(hot_audit)
    # Same operation and body ⇒ same fingerprint, same stored answer.
    assert _comparable(generic_key_row) == _comparable(hot_key)


async def test_a_replay_through_the_generic_claim_returns_the_stored_answer(client, pool):
    s = await make_structure(pool)
    unit_id = str(s["unit_ids"][0])
    headers = {**bearer("structure", finess=s["finess"]), **idem()}
    body = {"temporality": "current", "available": 2, "occupied": 8}
    first = await client.put(f"/v1/units/{unit_id}/capacity", json=body, headers=headers)
    assert first.status_code == 200
    async with pool.acquire() as conn, conn.transaction():
        audit = await conn.fetchrow(
            "SELECT actor FROM audit_entries WHERE object_id = $1 ORDER BY id DESC LIMIT 1",
            unit_id,
        )
        principal = Principal(sub=audit["actor"], role="structure", finess=s["finess"])
        idempotency = Idempotency(headers["Idempotency-Key"], f"PUT /v1/units/{unit_id}/capacity")
        replay = await changes.claim(conn, principal, idempotency, body)
    assert replay == Written(first.json(), 200, replayed=True)


async def test_every_event_written_follows_the_schema_of_api_events(client, pool):
    """Drive every writer once (declaration, carer declaration, registration, new unit,
    request, hold, admission, exit, release, refusal, cancellation, agrément registration
    and suspension with a child placed), then check each event
    of the outbox — these and all earlier tests' — against ``events.FIELDS``."""
    s = await make_structure(pool, units=[{"name": "U", "installed": 6, "age_min": 0}])
    unit_id = str(s["unit_ids"][0])
    structure = bearer("structure", finess=s["finess"])
    dept = bearer("department", authority="69M")
    r = await client.put(
        f"/v1/units/{unit_id}/capacity",
        json={"temporality": "current", "installed": 6, "available": 6},
        headers={**structure, **idem()},
    )
    assert r.status_code == 200, r.text
    carer_id = await make_carer(pool)
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        json={"available_places": 2, "status": "active"},
        headers=bearer("carer", carer_id=str(carer_id)),
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/structures/{s['id']}/units",
        json={
            "name": "Nouvelle",
            "age_min": 6,
            "age_max": 12,
            "sexes": ["F", "M"],
            "care_modes": ["durable"],
            "installed": 4,
        },
        headers={**structure, **idem()},
    )
    assert r.status_code == 201, r.text
    finess = make_finess("69", 800_000 + uuid.uuid4().int % 99_999)
    r = await client.post("/v1/structures", json=structure_body(finess), headers=bearer("operator"))
    assert r.status_code == 201, r.text

    async def new_request() -> str:
        r = await client.post("/v1/requests", json=request_body(), headers=dept)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def hold(request_id: str, kind: str, target: str) -> str:
        r = await client.post(
            "/v1/holds",
            json={"request_id": request_id, "target": {"kind": kind, "id": target}},
            headers=dept,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    placed = await hold(await new_request(), "unit", unit_id)
    assert (await client.post(f"/v1/holds/{placed}/admit", headers=dept)).status_code == 200
    reason = {"reason": "retour en famille"}
    r = await client.post(f"/v1/placements/{placed}/exit", json=reason, headers=dept)
    assert r.status_code == 200, r.text
    released = await hold(await new_request(), "carer", str(carer_id))
    r = await client.post(f"/v1/holds/{released}/release", json=reason, headers=dept)
    assert r.status_code == 200, r.text
    refused = await hold(await new_request(), "unit", unit_id)
    r = await client.post(
        f"/v1/holds/{refused}/refuse", json={"reason": "profil inadapté"}, headers=structure
    )
    assert r.status_code == 200, r.text
    cancelled = await new_request()
    r = await client.post(f"/v1/requests/{cancelled}/cancel", json=reason, headers=dept)
    assert r.status_code == 200, r.text
    # Agréments: a registration, then a suspension with a child placed (to review).
    r = await client.post(
        "/v1/agrements",
        json={
            "number": f"AF-CHG-{uuid.uuid4().hex[:8]}",
            "commune": "69266",
            "home": {"lat": 45.7731, "lon": 4.8921},
            "issued_on": "2024-01-15",
            "capacity": 2,
            "care_modes": ["durable"],
            "employer": {"authority": "69D"},
            # Held below by 69M: the department employing the carer opened them to others.
            "open_to_other_authorities": True,
        },
        headers={**dept, **idem()},
    )
    assert r.status_code == 201, r.text
    agreed = r.json()["carer_id"]
    r = await client.put(
        f"/v1/foster-carers/{agreed}/availability",
        json={"available_places": 1, "status": "active"},
        headers=bearer("carer", carer_id=agreed),
    )
    assert r.status_code == 200, r.text
    admitted = await hold(await new_request(), "carer", agreed)
    assert (await client.post(f"/v1/holds/{admitted}/admit", headers=dept)).status_code == 200
    r = await client.post(
        f"/v1/agrements/{agreed}/suspend",
        json={"reason": "sante"},
        headers={**dept, **idem(), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text

    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT type, authority, data, national_data FROM outbox_events")
    seen = set()
    for row in rows:
        assert row["type"] in events.FIELDS, row["type"]
        department_keys, national_keys = events.FIELDS[row["type"]]
        assert set(row["data"]) == department_keys, (row["type"], set(row["data"]))
        assert set(row["national_data"]) == national_keys, row["type"]
        # Every event carries its authority: in its row (the feed it goes to), in both payloads.
        assert row["authority"] is not None, row["type"]
        assert row["data"]["authority"] == row["authority"]
        # Nothing of children on the national feed (#18): those events have no national
        # payload; every other one names its authority there too.
        if national_keys:
            assert row["national_data"]["authority"] == row["authority"], row["type"]
        else:
            assert row["national_data"] == events.NOT_NATIONAL, row["type"]
        if not row["type"].startswith(("capacity.", "structure.")):
            # Carers reach the national feed as counts: no id (#14).
            assert not UUID_TEXT.search(json.dumps(row["national_data"])), row["type"]
            assert "commune" not in row["national_data"], row["type"]
        seen.add(row["type"])
    expected = set(events.FIELDS) - {events.HOLD_EXPIRED}
    assert expected <= seen, expected - seen
