"""Foster carers declaring availability."""

import uuid

from tests.support.factories import AUTHORITY, bearer, make_carer


async def test_carer_declares_own_availability(client, pool):
    carer_id = await make_carer(pool, capacity=3)
    headers = bearer("carer", carer_id=str(carer_id))
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=headers,
        json={"available_places": 2, "status": "active", "until": None},
    )
    assert r.status_code == 200, r.text
    assert r.json()["available_places"] == 2 and r.json()["version"] == 2
    assert "location" not in r.json()
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM carer_declarations WHERE carer_id = $1", carer_id
            )
            == 1
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM outbox_events WHERE type = 'carer.availability_updated'"
                " AND data->>'id' = $1",
                str(carer_id),
            )
            == 1
        )


async def test_more_than_agrement_is_422(client, pool):
    carer_id = await make_carer(pool, capacity=2)
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=bearer("carer", carer_id=str(carer_id)),
        json={"available_places": 3, "status": "active"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "available_places"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT version FROM foster_carers WHERE id = $1", carer_id) == 1


async def test_leave_until_date(client, pool):
    carer_id = await make_carer(pool)
    headers = bearer("department", authority="69M")
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=headers,
        json={"available_places": 0, "status": "leave", "until": "2000-01-01"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "until"
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=headers,
        json={"available_places": 0, "status": "leave", "until": "2099-01-01"},
    )
    assert r.status_code == 200 and r.json()["status_until"] == "2099-01-01"


async def test_scope_of_carer_writes(client, pool):
    carer_id = await make_carer(pool, department="69")
    body = {"available_places": 1, "status": "active"}
    for headers in (
        bearer("carer", carer_id=str(uuid.uuid4())),
        bearer("department", authority="01"),
        bearer("structure", finess="690000018"),
        bearer("national"),
    ):
        r = await client.put(
            f"/v1/foster-carers/{carer_id}/availability", headers=headers, json=body
        )
        assert r.status_code == 403
    r = await client.put(
        f"/v1/foster-carers/{uuid.uuid4()}/availability", headers=bearer("operator"), json=body
    )
    assert r.status_code == 404


async def test_places_held_through_places_cannot_be_declared_free(client, pool):
    carer_id = await make_carer(pool, capacity=2)
    headers = bearer("carer", carer_id=str(carer_id))
    url = f"/v1/foster-carers/{carer_id}/availability"
    r = await client.put(url, headers=headers, json={"available_places": 2, "status": "active"})
    assert r.status_code == 200
    dept = bearer("department", authority="69M")
    req = await client.post(
        "/v1/requests",
        headers=dept,
        json={
            "department": "69",
            "children": [{"age": 5, "sex": "F", "disability_profiles": []}],
            "origin": {"commune": "69123"},
            "care_mode": "durable",
            "urgency": "days",
            "measure": {"kind": "judicial", "decided_on": "2026-11-01"},
            "reference": "TEST-CARER-1",
        },
    )
    assert req.status_code == 201, req.text
    hold = await client.post(
        "/v1/holds",
        headers=dept,
        json={"request_id": req.json()["id"], "target": {"kind": "carer", "id": str(carer_id)}},
    )
    assert hold.status_code == 201, hold.text
    r = await client.put(url, headers=headers, json={"available_places": 2, "status": "active"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "available_places"
    r = await client.put(url, headers=headers, json={"available_places": 1, "status": "active"})
    assert r.status_code == 200


async def test_the_national_feed_counts_carers_without_naming_them(client, pool):
    """A carer's declaration reaches the national feed as its authority's counts — places
    and carers by status that moved — never the carer's id, commune or status (#14)."""
    carer_id = await make_carer(pool, capacity=3)
    carer = bearer("carer", carer_id=str(carer_id))
    bodies = [
        {"available_places": 2, "status": "active"},
        {"available_places": 0, "status": "leave", "until": "2099-01-01"},
    ]
    for body in bodies:
        r = await client.put(f"/v1/foster-carers/{carer_id}/availability", headers=carer, json=body)
        assert r.status_code == 200, r.text
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data, national_data FROM outbox_events"
            " WHERE type = 'carer.availability_updated' AND data->>'id' = $1 ORDER BY id",
            str(carer_id),
        )
    assert [r["national_data"] for r in rows] == [
        {
            "department": "69",
            "authority": AUTHORITY,
            "available_places": 2,
            "carer_count": {},
            "source": "api",
        },
        {
            "department": "69",
            "authority": AUTHORITY,
            "available_places": -2,
            "carer_count": {"active": -1, "leave": 1},
            "source": "api",
        },
    ]
    assert rows[1]["data"]["id"] == str(carer_id) and rows[1]["data"]["commune"]


async def test_suspended_is_not_a_status_anyone_declares(client, pool):
    """Suspension is a decision on the agrément by the authority that issued it (CASF
    L421-6), never a declared status (#15): the carer asking for it is refused with 403,
    the authority with 422 pointing at the agrément's endpoint, both naming ``status`` and
    writing nothing. Once the agrément is suspended (here by SQL, as its issuer's endpoint
    does: free places zeroed in the same write), the carer cannot declare a free place —
    the reported self-reinstatement — but still declares their own leave."""
    carer_id = await make_carer(pool, capacity=2)
    url = f"/v1/foster-carers/{carer_id}/availability"
    carer = bearer("carer", carer_id=str(carer_id))
    authority = bearer("department", authority=AUTHORITY)

    async def version() -> int:
        return await pool.fetchval("SELECT version FROM foster_carers WHERE id = $1", carer_id)

    for headers, status in ((carer, 403), (authority, 422)):
        r = await client.put(
            url, headers=headers, json={"available_places": 0, "status": "suspended"}
        )
        assert r.status_code == status and r.json()["errors"][0]["field"] == "status", r.text
    assert "/v1/agrements/" in r.json()["detail"]
    assert await version() == 1
    r = await client.put(url, headers=carer, json={"available_places": 1, "status": "active"})
    assert r.status_code == 200, r.text
    await pool.execute(
        "UPDATE foster_carers SET agrement_state = 'suspended', suspended_from = current_date,"
        " suspension_reason = 'enquete_administrative', available_places = 0 WHERE id = $1",
        carer_id,
    )
    before = await version()
    for headers in (carer, authority):
        r = await client.put(url, headers=headers, json={"available_places": 1, "status": "active"})
        assert r.status_code == 409, r.text
        assert r.json()["agrement_state"] == "suspended"
        assert r.json()["errors"][0]["field"] == "available_places"
    assert await version() == before
    r = await client.put(url, headers=carer, json={"available_places": 0, "status": "leave"})
    assert r.status_code == 200, r.text  # leave is the carer's own
    assert r.json()["agrement_state"] == "suspended" and r.json()["available_places"] == 0
