"""POST /v1/assignments/optimize: exact plan vs first-come-first-served, proposes only."""

import uuid

from tests.support.factories import bearer, idem, make_structure

DEPT = bearer("department", authority="69M")


async def declare(client, structure, index, available):
    r = await client.put(
        f"/v1/units/{structure['unit_ids'][index]}/capacity",
        headers={**bearer("structure", finess=structure["finess"]), **idem()},
        json={"temporality": "current", "available": available},
    )
    assert r.status_code == 200, r.text


async def new_request(client, children, decided_on):
    r = await client.post(
        "/v1/requests",
        headers=DEPT,
        json={
            "department": "69",
            "children": children,
            "origin": {"commune": "69123"},
            "care_mode": "mere_enfant",
            "urgency": "days",
            "measure": {"kind": "administrative", "decided_on": decided_on},
            "reference": f"OPT-{uuid.uuid4().hex[:8]}",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_optimum_beats_first_come_first_served_and_writes_nothing(client, pool):
    unit = {"age_min": 0, "age_max": 3, "care_modes": ["mere_enfant"], "installed": 4}
    near = await make_structure(pool, commune="69123", units=[{**unit, "name": "Deux places"}])
    far = await make_structure(pool, commune="69266", units=[{**unit, "name": "Une place"}])
    await declare(client, near, 0, 2)
    await declare(client, far, 0, 1)
    first = await new_request(client, [{"age": 1, "sex": "F"}], "2026-10-01")
    twins = await new_request(
        client, [{"age": 2, "sex": "M"}, {"age": 2, "sex": "F"}], "2026-10-15"
    )
    async with pool.acquire() as conn:
        versions_before = await conn.fetch(
            "SELECT unit_id, version FROM capacity_snapshots ORDER BY unit_id, temporality"
        )
        holds_before = await conn.fetchval("SELECT count(*) FROM holds")

    r = await client.post(
        "/v1/assignments/optimize",
        headers=DEPT,
        json={"authority": "69M", "request_ids": [first, twins]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    best = {a["request_id"]: a for a in body["optimal"]["assignments"]}
    fcfs = {a["request_id"]: a for a in body["greedy"]["assignments"]}
    # First come, first served: the single child takes the two-place unit, the twins wait.
    assert fcfs[first]["target"]["id"] == str(near["unit_ids"][0])
    assert twins in body["greedy"]["unassigned"]
    # The optimum places everyone: twins together in the two-place unit.
    assert best[twins]["target"]["id"] == str(near["unit_ids"][0]) and best[twins]["places"] == 2
    assert best[first]["target"]["id"] == str(far["unit_ids"][0])
    assert body["optimal"]["total"] >= body["greedy"]["total"]
    assert body["gain"] > 0
    # A two-request problem is proved optimal; first-come-first-served certifies nothing.
    assert body["optimal"]["optimal"] is True and body["optimal"]["gap"] == 0
    assert body["greedy"]["optimal"] is False and body["greedy"]["gap"] is None

    async with pool.acquire() as conn:
        assert (
            await conn.fetch(
                "SELECT unit_id, version FROM capacity_snapshots ORDER BY unit_id, temporality"
            )
            == versions_before
        )
        assert await conn.fetchval("SELECT count(*) FROM holds") == holds_before


async def test_scope_and_bad_ids(client):
    r = await client.post(
        "/v1/assignments/optimize",
        headers=bearer("department", authority="01"),
        json={"authority": "69M"},
    )
    assert r.status_code == 403
    r = await client.post(
        "/v1/assignments/optimize", headers=bearer("national"), json={"authority": "69M"}
    )
    assert r.status_code == 403
    r = await client.post(
        "/v1/assignments/optimize",
        headers=DEPT,
        json={"authority": "69M", "request_ids": [str(uuid.uuid4())]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "request_ids"
    r = await client.post("/v1/assignments/optimize", headers=DEPT, json={"department": "6"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department"
