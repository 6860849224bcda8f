"""Orientation workflow: placement requests, holds, admissions, exits — privacy, audit, scope,
every illegal transition refused with nothing changed. Against the real database."""

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.requests.service import local_today
from tests.support.checks import fingerprint, snapshot
from tests.support.factories import (
    AUTHORITY,
    DEPT,
    bearer,
    dept,
    hold,
    make_structure,
    new_carer,
    new_request,
    new_unit,
    request_body,
)


async def last_declaration(pool: asyncpg.Pool, unit_id: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM capacity_declarations WHERE unit_id = $1 AND temporality = 'current'"
            " ORDER BY id DESC LIMIT 1",
            uuid.UUID(unit_id),
        )
    return dict(row)


async def carer_places(pool: asyncpg.Pool, carer_id: str) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT available_places FROM foster_carers WHERE id = $1", uuid.UUID(carer_id)
        )


async def events_of(pool: asyncpg.Pool, request_id: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            """
            SELECT type, department, data, national_data FROM outbox_events
             WHERE data->>'request_id' = $1 OR (data->>'id' = $1 AND type LIKE 'request.%')
             ORDER BY id
            """,
            request_id,
        )


async def history_events(client: httpx.AsyncClient, request: dict[str, Any]) -> list[str]:
    r = await client.get(f"/v1/requests/{request['id']}/history", headers=dept())
    assert r.status_code == 200, r.text
    return [item["event"] for item in r.json()["items"]]


# --- Placement requests ------------------------------------------------------------------


async def test_create_request(client, pool):
    body = request_body(n_children=2)
    r = await client.post("/v1/requests", json=body, headers=dept())
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "waiting" and out["hold"] is None
    assert out["days_since_decision"] == 3
    # Ages given in years come back in months, and (deprecated) in years. With a profile, a
    # child may carry an MDPH notification and a disability service (#16): null when not given.
    none = {"mdph_notified": None, "disability_service": None}
    assert out["children"] == [{**c, "age_months": c["age"] * 12, **none} for c in body["children"]]
    assert (out["timing"], out["public"], out["formula"]) == ("durable", "mineur", "enfant")
    assert out["care_mode"] == "durable" and out["parent_expecting"] is False
    assert out["origin"]["commune"] == "69123"
    assert out["measure"] == body["measure"]
    assert r.headers["location"] == f"/v1/requests/{out['id']}"
    assert await history_events(client, out) == ["created"]
    events = await events_of(pool, out["id"])
    assert [e["type"] for e in events] == ["request.created"]
    # The national feed: nothing of it (#18: nothing of children nationally; the figures of
    # children are /v1/stats/children, with secrecy).
    assert events[0]["national_data"] == {}
    assert events[0]["data"]["children"] == out["children"]


async def test_point_origin_is_stored_rounded(client):
    out = await new_request(client, origin={"lat": 45.767891, "lon": 4.834567})
    assert out["origin"] == {"commune": None, "lat": 45.77, "lon": 4.83}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": "Léa Martin"}, "name"),
        ({"first_name": "Léa"}, "first_name"),
        ({"birth_date": "2018-04-02"}, "birth_date"),
        ({"address": "3 rue des Lilas"}, "address"),
        ({"children": [{"age": 7, "sex": "F", "name": "Léa"}]}, "children.0.name"),
        (
            {"children": [{"age": 7, "sex": "F", "birth_date": "2018-04-02"}]},
            "children.0.birth_date",
        ),
        ({"children": [{"age": 7, "sex": "F", "address": "Lyon"}]}, "children.0.address"),
        ({"origin": {"commune": "69123", "address": "3 rue des Lilas"}}, "origin.address"),
        (
            {"measure": {"kind": "judicial", "decided_on": "2026-01-02", "judge": "X"}},
            "measure.judge",
        ),
        ({"reference": "Léa Martin"}, "reference"),
    ],
)
async def test_personal_data_is_refused(client, pool, patch, field):
    body = request_body(**patch)
    r = await client.post("/v1/requests", json=body, headers=dept())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    async with pool.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM placement_requests WHERE reference = $1", body["reference"]
        )


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"origin": {"commune": "69999"}}, "origin.commune"),
        ({"origin": {"commune": "lyon"}}, "origin.commune"),
        ({"origin": {"lat": 0.0, "lon": 0.0}}, "origin"),
        ({"origin": {"lat": 4.84, "lon": 45.76}}, "origin"),
        ({"origin": {"lat": 45.76}}, "origin"),
        ({"origin": {"commune": "69123", "lat": 45.7, "lon": 4.8}}, "origin"),
        (
            {
                "measure": {
                    "kind": "judicial",
                    "decided_on": (local_today(DEPT) + timedelta(days=2)).isoformat(),
                }
            },
            "measure.decided_on",
        ),
        ({"measure": {"kind": "judicial", "decided_on": "1990-01-01"}}, "measure.decided_on"),
        ({"measure": {"kind": "informal", "decided_on": "2026-01-02"}}, "measure.kind"),
        ({"children": []}, "children"),
        ({"children": [{"age": 22, "sex": "F"}]}, "children.0.age"),
        ({"children": [{"age": -1, "sex": "F"}]}, "children.0.age"),
        ({"children": [{"age": 5, "sex": "X"}]}, "children.0.sex"),
        (
            {"children": [{"age": 5, "sex": "F", "disability_profiles": ["autre"]}]},
            "children.0.disability_profiles.0",
        ),
        ({"care_mode": "hotel"}, "care_mode"),
        ({"timing": "hotel"}, "timing"),
        ({"public": "adulte"}, "public"),
        ({"care_mode": "mna", "public": "mineur"}, "care_mode"),  # deprecated, contradicted
        ({"parent_expecting": True}, "parent_expecting"),  # formula enfant
        ({"children": [{"age": 2, "age_months": 30, "sex": "F"}]}, "children.0.age_months"),
        ({"children": [{"sex": "F"}]}, "children.0.age_months"),
        ({"children": [{"age_months": 264, "sex": "F"}]}, "children.0.age_months"),
        ({"urgency": "asap"}, "urgency"),
        ({"department": "99"}, "department"),
        ({"reference": ""}, "reference"),
    ],
)
async def test_bad_request_input_is_422_naming_the_field(client, patch, field):
    r = await client.post("/v1/requests", json=request_body(**patch), headers=dept())
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()


async def test_unknown_department_for_an_authority_admin_is_422(client):
    # 95: a department code the fixture database does not have.
    r = await client.post(
        "/v1/requests",
        json=request_body(department="95"),
        headers=bearer("authority_admin", authority="69M"),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department"


async def test_create_scope(client):
    body = request_body()
    assert (await client.post("/v1/requests", json=body, headers=dept("01"))).status_code == 403
    for headers in (
        bearer("national"),
        bearer("structure", finess="690000018"),
        bearer("operator"),  # the platform operator reads and writes no child data
        bearer("authority_admin", authority="13"),
    ):
        assert (await client.post("/v1/requests", json=body, headers=headers)).status_code == 403
    assert (await client.post("/v1/requests", json=body)).status_code == 401
    r = await client.post(
        "/v1/requests", json=body, headers=bearer("authority_admin", authority="69M")
    )
    assert r.status_code == 201


async def test_idempotent_request_creation(client, pool):
    body = request_body()
    headers = {**dept(), "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/requests", json=body, headers=headers)
    second = await client.post("/v1/requests", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM placement_requests WHERE reference = $1", body["reference"]
            )
            == 1
        )


async def test_list_waiting_and_unexecuted(client):
    old_day = (local_today(DEPT) - timedelta(days=45)).isoformat()
    old = await new_request(client, measure={"kind": "judicial", "decided_on": old_day})
    recent = await new_request(client)
    r = await client.get(f"/v1/requests?authority={AUTHORITY}&status=waiting", headers=dept())
    assert r.status_code == 200
    page = r.json()
    by_id = {item["id"]: item for item in page["items"]}
    assert page["total"] >= 2 and {old["id"], recent["id"]} <= set(by_id)
    assert by_id[old["id"]]["days_since_decision"] == 45
    assert all(item["status"] == "waiting" for item in page["items"])
    # Oldest decision first: the waiting list order.
    days = [item["days_since_decision"] for item in page["items"]]
    assert days == sorted(days, reverse=True)

    r = await client.get(f"/v1/requests/unexecuted?authority={AUTHORITY}", headers=dept())
    assert r.status_code == 200
    unexecuted = r.json()
    assert unexecuted["after_days"] == 30
    ids = {item["id"] for item in unexecuted["items"]}
    assert old["id"] in ids and recent["id"] not in ids
    assert all(item["days_since_decision"] >= 30 for item in unexecuted["items"])
    # The department's own token needs no parameter.
    r = await client.get("/v1/requests/unexecuted", headers=dept())
    assert old["id"] in {item["id"] for item in r.json()["items"]}


async def test_reads_are_audited(client, pool):
    request = await new_request(client)
    headers = bearer("department", authority=AUTHORITY, sub="agent-42")

    async def audit_rows() -> list[asyncpg.Record]:
        async with pool.acquire() as conn:
            return await conn.fetch(
                "SELECT actor, role, action, object_id, department, authority, detail,"
                " occurred_at"
                " FROM audit_entries WHERE object_id = $1 OR detail->'request_ids' ? $1"
                " ORDER BY id",
                request["id"],
            )

    assert (await client.get(f"/v1/requests/{request['id']}", headers=headers)).status_code == 200
    r = await client.get(f"/v1/requests/{request['id']}/history", headers=headers)
    assert r.status_code == 200
    r = await client.get(f"/v1/requests?authority={AUTHORITY}&limit=500", headers=headers)
    assert request["id"] in {i["id"] for i in r.json()["items"]}
    rows = await audit_rows()
    actions = [row["action"] for row in rows]
    assert actions == ["request.create", "request.read", "request.history", "request.list"]
    for row in rows[1:]:
        assert row["actor"] == "agent-42" and row["role"] == "department"
        assert row["department"] == DEPT and row["occurred_at"] is not None
    assert {row["authority"] for row in rows} == {AUTHORITY}
    assert request["id"] in rows[-1]["detail"]["request_ids"]


async def test_national_and_target_roles_are_refused_child_level_data(client, pool):
    request = await new_request(client)
    unit = await new_unit(client, pool)
    h = await hold(client, request, "unit", unit["id"])
    hold_id = h.json()["id"]
    before = await fingerprint(pool, [request["id"]], unit["id"])
    national = bearer("national")
    rid = request["id"]
    calls = [
        ("POST", "/v1/requests", request_body()),
        ("GET", f"/v1/requests?authority={AUTHORITY}", None),
        ("GET", f"/v1/requests/{rid}", None),
        ("GET", f"/v1/requests/{rid}/history", None),
        ("GET", f"/v1/requests/unexecuted?authority={AUTHORITY}", None),
        ("POST", f"/v1/requests/{rid}/cancel", {"reason": "x"}),
        ("GET", f"/v1/audit?authority={AUTHORITY}", None),
        ("POST", "/v1/holds", {"request_id": rid, "target": {"kind": "unit", "id": unit["id"]}}),
        ("GET", f"/v1/holds/{hold_id}", None),
        ("POST", f"/v1/holds/{hold_id}/admit", None),
        ("POST", f"/v1/holds/{hold_id}/release", None),
        ("POST", f"/v1/holds/{hold_id}/refuse", {"reason": "x"}),
        ("POST", f"/v1/placements/{hold_id}/exit", {"reason": "x"}),
    ]
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=national)
        assert r.status_code == 403, (method, url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # Structures and carers never see requests either.
    for headers in (unit["headers"], bearer("carer", carer_id=str(uuid.uuid4()))):
        for method, url, body in calls[:7]:
            r = await client.request(method, url, json=body, headers=headers)
            assert r.status_code == 403, (method, url, r.text)
    assert await fingerprint(pool, [request["id"]], unit["id"]) == before


async def test_other_department_is_403(client, pool):
    request = await new_request(client)
    unit = await new_unit(client, pool)
    hold_id = (await hold(client, request, "unit", unit["id"])).json()["id"]
    before = await fingerprint(pool, [request["id"]], unit["id"])
    other = dept("01")
    rid = request["id"]
    for method, url, body in [
        ("GET", f"/v1/requests/{rid}", None),
        ("GET", f"/v1/requests/{rid}/history", None),
        ("GET", f"/v1/requests?authority={AUTHORITY}", None),
        ("GET", f"/v1/requests/unexecuted?authority={AUTHORITY}", None),
        ("GET", f"/v1/audit?authority={AUTHORITY}", None),
        ("POST", f"/v1/requests/{rid}/cancel", {"reason": "x"}),
        ("GET", f"/v1/holds/{hold_id}", None),
        ("POST", f"/v1/holds/{hold_id}/admit", None),
        ("POST", f"/v1/holds/{hold_id}/release", None),
        ("POST", f"/v1/placements/{hold_id}/exit", {"reason": "x"}),
    ]:
        r = await client.request(method, url, json=body, headers=other)
        assert r.status_code == 403, (method, url, r.text)
    second = await new_request(client)
    r = await client.post(
        "/v1/holds",
        json={"request_id": second["id"], "target": {"kind": "unit", "id": unit["id"]}},
        headers=other,
    )
    assert r.status_code == 403
    assert await fingerprint(pool, [request["id"]], unit["id"]) == before


async def test_unknown_request_is_404(client):
    for url in (f"/v1/requests/{uuid.uuid4()}", f"/v1/requests/{uuid.uuid4()}/history"):
        r = await client.get(url, headers=dept())
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.get("/v1/requests/not-a-uuid", headers=dept())
    assert r.status_code == 422


async def test_department_reads_the_audit_trail_of_its_requests(client, pool):
    request = await new_request(client)
    unit = await new_unit(client, pool)
    hold_id = (await hold(client, request, "unit", unit["id"])).json()["id"]
    await client.get(f"/v1/requests/{request['id']}", headers=dept())
    r = await client.post(
        f"/v1/holds/{hold_id}/refuse", json={"reason": "complet"}, headers=unit["headers"]
    )
    assert r.status_code == 200
    r = await client.get("/v1/requests?status=waiting&limit=500", headers=dept())
    assert request["id"] in [i["id"] for i in r.json()["items"]]
    r = await client.get(f"/v1/audit?object_id={request['id']}", headers=dept())
    assert r.status_code == 200, r.text
    page = r.json()
    actions = [item["action"] for item in reversed(page["items"])]
    # By its id, by a hold's request_id, and by a list read that returned it.
    assert actions == [
        "request.create",
        "hold.create",
        "request.read",
        "hold.refuse",
        "request.list",
    ]
    assert page["total"] == 5
    refuse = page["items"][1]
    assert refuse["role"] == "structure" and refuse["actor"] == f"structure-{unit['finess']}"
    r = await client.get(f"/v1/audit?authority={AUTHORITY}&limit=5", headers=dept())
    assert r.status_code == 200 and len(r.json()["items"]) == 5
    assert all(i["authority"] == AUTHORITY for i in r.json()["items"])
    # Another department sees nothing of it, even by id.
    r = await client.get(f"/v1/audit?object_id={request['id']}", headers=dept("01"))
    assert r.status_code == 200 and r.json() == {"items": [], "total": 0}
    r = await client.get(
        f"/v1/audit?object_id={request['id']}", headers=bearer("authority_admin", authority="69M")
    )
    assert r.json()["total"] == 5
    r = await client.get(f"/v1/audit?object_id={request['id']}", headers=bearer("operator"))
    assert r.status_code == 403
    r = await client.get(f"/v1/audit?object_id={request['id']}&offset=5", headers=dept())
    assert r.json() == {"items": [], "total": 5}


# --- Holds: lifecycles ------------------------------------------------------------------


async def test_unit_lifecycle_hold_admit_exit(client, pool):
    unit = await new_unit(client, pool, available=3, installed=10)
    request = await new_request(client, n_children=2)
    start = await snapshot(pool, unit["id"])

    r = await hold(client, request, "unit", unit["id"])
    assert r.status_code == 201, r.text
    h = r.json()
    assert h["status"] == "held" and h["places"] == 2 and h["request_status"] == "held"
    assert r.headers["location"] == f"/v1/holds/{h['id']}"
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"], snap["occupied"]) == (1, 2, start["occupied"])
    assert snap["version"] == start["version"] + 1
    assert snap["source"] == "hold" and snap["declared_by"] == f"department-{AUTHORITY}"
    history = await last_declaration(pool, unit["id"])
    assert {k: history[k] for k in snap} == snap
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.json()["status"] == "held"
    assert r.json()["hold"]["id"] == h["id"] and r.json()["hold"]["places"] == 2

    r = await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "admitted" and r.json()["request_status"] == "placed"
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"], snap["occupied"]) == (
        1,
        0,
        start["occupied"] + 2,
    )

    r = await client.post(
        f"/v1/placements/{h['id']}/exit", json={"reason": "retour en famille"}, headers=dept()
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "exited" and r.json()["request_status"] == "exited"
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"], snap["occupied"]) == (
        3,
        0,
        start["occupied"],
    )
    assert snap["version"] == start["version"] + 3
    assert await history_events(client, request) == ["created", "held", "admitted", "exited"]

    events = await events_of(pool, request["id"])
    assert [e["type"] for e in events] == [
        "request.created",
        "request.updated",
        "hold.created",
        "request.updated",
        "admission.recorded",
        "request.updated",
        "exit.recorded",
    ]
    for e in events:
        assert e["department"] == DEPT
        # Neither the request's nor the hold's events reach the national feed (#18).
        assert e["national_data"] == {}, e["type"]
    assert events[-1]["data"]["reason"] == "retour en famille"
    async with pool.acquire() as conn:
        capacity_events = await conn.fetch(
            "SELECT data FROM outbox_events WHERE type = 'capacity.updated'"
            " AND data->>'unit_id' = $1 ORDER BY id",
            unit["id"],
        )
    # A declaration, then the workflow's moves (which say where they come from).
    assert [e["data"]["source"] for e in capacity_events] == ["api", "hold", "admit", "exit"]


async def test_release_and_refuse_give_the_places_back(client, pool):
    unit = await new_unit(client, pool, available=1)
    request = await new_request(client)
    start = await snapshot(pool, unit["id"])

    h = (await hold(client, request, "unit", unit["id"])).json()
    r = await client.post(f"/v1/holds/{h['id']}/release", headers=dept())
    assert r.status_code == 200 and r.json()["status"] == "released"
    assert r.json()["request_status"] == "waiting"
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"]) == (start["available"], start["reserved"])
    assert snap["source"] == "release"

    h = (await hold(client, request, "unit", unit["id"])).json()
    other = await make_structure(pool)
    r = await client.post(
        f"/v1/holds/{h['id']}/refuse",
        json={"reason": "x"},
        headers=bearer("structure", finess=other["finess"]),
    )
    assert r.status_code == 403
    r = await client.post(f"/v1/holds/{h['id']}/refuse", json={"reason": "x"}, headers=dept())
    assert r.status_code == 403
    r = await client.post(f"/v1/holds/{h['id']}/refuse", json={}, headers=unit["headers"])
    # A refusal needs a coded reason (#18); the free text alone (old clients) is `autre`.
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason_code"
    r = await client.post(
        f"/v1/holds/{h['id']}/refuse",
        json={"reason_code": "pas_une_raison"},
        headers=unit["headers"],
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason_code"
    r = await client.post(
        f"/v1/holds/{h['id']}/refuse",
        json={"reason": "profil incompatible avec le groupe"},
        headers=unit["headers"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refused"
    assert r.json()["reason"] == "profil incompatible avec le groupe"
    assert r.json()["reason_code"] == "autre"
    snap = await snapshot(pool, unit["id"])
    assert (snap["available"], snap["reserved"]) == (start["available"], start["reserved"])
    r = await client.get(f"/v1/requests/{request['id']}/history", headers=dept())
    items = r.json()["items"]
    assert [i["event"] for i in items] == ["created", "held", "released", "held", "refused"]
    assert items[-1]["reason"] == "profil incompatible avec le groupe"
    assert items[-1]["reason_code"] == "autre"
    assert items[2]["reason_code"] == "autre"  # the release without a body
    assert items[-1]["role"] == "structure" and items[-1]["to_status"] == "waiting"
    # Back on the waiting list: it can be held again.
    assert (await hold(client, request, "unit", unit["id"])).status_code == 201


async def test_carer_lifecycle(client, pool):
    carer = await new_carer(client, pool, capacity=3, available=3)
    request = await new_request(client, n_children=2)
    r = await hold(client, request, "carer", carer["id"])
    assert r.status_code == 201, r.text
    h = r.json()
    assert h["target"] == {"kind": "carer", "id": carer["id"]} and h["places"] == 2
    assert await carer_places(pool, carer["id"]) == 1
    r = await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())
    assert r.status_code == 200
    assert await carer_places(pool, carer["id"]) == 1
    r = await client.post(f"/v1/placements/{h['id']}/exit", json={"reason": "fin"}, headers=dept())
    assert r.status_code == 200
    assert await carer_places(pool, carer["id"]) == 3
    async with pool.acquire() as conn:
        sources = [
            row["source"]
            for row in await conn.fetch(
                "SELECT source FROM carer_declarations WHERE carer_id = $1 ORDER BY id",
                uuid.UUID(carer["id"]),
            )
        ]
        feed = await conn.fetch(
            "SELECT data FROM outbox_events WHERE type = 'carer.availability_updated'"
            " AND data->>'id' = $1 ORDER BY id",
            carer["id"],
        )
    assert sources == ["api", "hold", "exit"]
    assert [e["data"]["available_places"] for e in feed] == [3, 1, 3]
    assert await history_events(client, request) == ["created", "held", "admitted", "exited"]


async def test_carer_refuses_and_release_is_capped_at_the_agrement(client, pool):
    carer = await new_carer(client, pool, capacity=2, available=1)
    request = await new_request(client)
    h = (await hold(client, request, "carer", carer["id"])).json()
    assert await carer_places(pool, carer["id"]) == 0
    # The carer re-declares meanwhile: the held place cannot be declared free again (422),
    # the other one can.
    r = await client.put(
        f"/v1/foster-carers/{carer['id']}/availability",
        headers=carer["headers"],
        json={"available_places": 2, "status": "active"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "available_places"
    r = await client.put(
        f"/v1/foster-carers/{carer['id']}/availability",
        headers=carer["headers"],
        json={"available_places": 1, "status": "active"},
    )
    assert r.status_code == 200
    r = await client.post(
        f"/v1/holds/{h['id']}/refuse",
        json={"reason": "congé"},
        headers=bearer("carer", carer_id=str(uuid.uuid4())),
    )
    assert r.status_code == 403
    r = await client.post(
        f"/v1/holds/{h['id']}/refuse", json={"reason": "congé"}, headers=carer["headers"]
    )
    assert r.status_code == 200 and r.json()["status"] == "refused"
    assert await carer_places(pool, carer["id"]) == 2  # never above the agrément


async def test_carer_not_active_is_409(client, pool):
    carer = await new_carer(client, pool, capacity=2, available=0)
    r = await client.put(
        f"/v1/foster-carers/{carer['id']}/availability",
        headers=carer["headers"],
        json={"available_places": 0, "status": "leave", "until": "2099-01-01"},
    )
    assert r.status_code == 200
    async with pool.acquire() as conn:  # on leave but with places left (inconsistent on purpose)
        await conn.execute(
            "UPDATE foster_carers SET available_places = 2 WHERE id = $1", uuid.UUID(carer["id"])
        )
    request = await new_request(client)
    before = await fingerprint(pool, [request["id"]], carer_id=carer["id"])
    r = await hold(client, request, "carer", carer["id"])
    assert r.status_code == 409 and "leave" in r.json()["detail"]
    assert await fingerprint(pool, [request["id"]], carer_id=carer["id"]) == before


async def test_idempotent_hold_creation(client, pool):
    unit = await new_unit(client, pool, available=2)
    request = await new_request(client)
    headers = {**dept(), "Idempotency-Key": str(uuid.uuid4())}
    body = {"request_id": request["id"], "target": {"kind": "unit", "id": unit["id"]}}
    first = await client.post("/v1/holds", json=body, headers=headers)
    second = await client.post("/v1/holds", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert (await snapshot(pool, unit["id"]))["reserved"] == 1


async def test_cancel_waiting_request(client, pool):
    request = await new_request(client)
    r = await client.post(
        f"/v1/requests/{request['id']}/cancel", json={"reason": "mainlevée"}, headers=dept()
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert await history_events(client, request) == ["created", "cancelled"]
    r = await client.post(
        f"/v1/requests/{request['id']}/cancel", json={"reason": "mainlevée"}, headers=dept()
    )
    assert r.status_code == 409


# --- Illegal transitions: 409 (or 4xx) with the reason, nothing changed ---------------------


async def refused(
    pool: asyncpg.Pool,
    call: Any,
    status: int,
    request_ids: list[str],
    unit_id: str | None = None,
    carer_id: str | None = None,
    says: str | None = None,
) -> httpx.Response:
    before = await fingerprint(pool, request_ids, unit_id, carer_id)
    r = await call
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if says:
        assert says in r.json()["detail"], r.json()["detail"]
    assert await fingerprint(pool, request_ids, unit_id, carer_id) == before
    return r


async def test_double_admit_is_409(client, pool):
    unit = await new_unit(client, pool)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    assert (await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())).status_code == 200
    admit = client.post(f"/v1/holds/{h['id']}/admit", headers=dept())
    await refused(pool, admit, 409, [request["id"]], unit["id"], says="déjà admise")


async def test_concurrent_double_admit_one_wins(client, pool):
    import asyncio

    unit = await new_unit(client, pool)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    results = await asyncio.gather(
        *(client.post(f"/v1/holds/{h['id']}/admit", headers=dept()) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]
    snap = await snapshot(pool, unit["id"])
    assert snap["reserved"] == 0 and snap["occupied"] == 9


async def test_admit_of_an_expired_hold_is_409(client, pool):
    unit = await new_unit(client, pool)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE holds SET expires_at = now() - interval '1 minute' WHERE id = $1",
            uuid.UUID(h["id"]),
        )
    occupied = (await snapshot(pool, unit["id"]))["occupied"]
    r = await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())
    # The background expiry may have released it first: either way, no admission.
    assert r.status_code == 409, r.text
    assert "expir" in r.json()["detail"]
    assert (await snapshot(pool, unit["id"]))["occupied"] == occupied
    assert "admission.recorded" not in [e["type"] for e in await events_of(pool, request["id"])]


async def test_exit_of_a_request_not_placed_is_409(client, pool):
    unit = await new_unit(client, pool)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    exit_call = client.post(f"/v1/placements/{h['id']}/exit", json={"reason": "x"}, headers=dept())
    await refused(pool, exit_call, 409, [request["id"]], unit["id"], says="pas placée")
    assert (await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())).status_code == 200
    r = await client.post(f"/v1/placements/{h['id']}/exit", json={"reason": "x"}, headers=dept())
    assert r.status_code == 200
    exit_again = client.post(f"/v1/placements/{h['id']}/exit", json={"reason": "x"}, headers=dept())
    await refused(pool, exit_again, 409, [request["id"]], unit["id"], says="pas placée")


async def test_transitions_from_closed_holds_are_409(client, pool):
    unit = await new_unit(client, pool)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    assert (await client.post(f"/v1/holds/{h['id']}/release", headers=dept())).status_code == 200
    ids = [request["id"]]

    def act(hold_id: str, action: str):
        if action == "refuse":  # the establishment's side
            body = {"reason": "x"}
            return client.post(f"/v1/holds/{hold_id}/refuse", json=body, headers=unit["headers"])
        return client.post(f"/v1/holds/{hold_id}/{action}", headers=dept())

    for action, says in [("release", "released"), ("admit", None), ("refuse", None)]:
        await refused(pool, act(h["id"], action), 409, ids, unit["id"], says=says)
    h2 = (await hold(client, request, "unit", unit["id"])).json()
    assert (await client.post(f"/v1/holds/{h2['id']}/admit", headers=dept())).status_code == 200
    for action, says in [("release", "admitted"), ("refuse", None)]:
        await refused(pool, act(h2["id"], action), 409, ids, unit["id"], says=says)


async def test_hold_on_a_request_that_is_not_waiting_is_409(client, pool):
    unit = await new_unit(client, pool, available=3)
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    await refused(
        pool,
        hold(client, request, "unit", unit["id"]),
        409,
        [request["id"]],
        unit["id"],
        says="held",
    )
    assert (await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())).status_code == 200
    await refused(
        pool,
        hold(client, request, "unit", unit["id"]),
        409,
        [request["id"]],
        unit["id"],
        says="placed",
    )
    cancelled = await new_request(client)
    await client.post(
        f"/v1/requests/{cancelled['id']}/cancel", json={"reason": "x"}, headers=dept()
    )
    await refused(
        pool,
        hold(client, cancelled, "unit", unit["id"]),
        409,
        [cancelled["id"]],
        unit["id"],
        says="cancelled",
    )
    cancel_held = client.post(
        f"/v1/requests/{request['id']}/cancel", json={"reason": "x"}, headers=dept()
    )
    await refused(pool, cancel_held, 409, [request["id"]], unit["id"])


async def test_not_enough_places_for_the_group_is_409(client, pool):
    unit = await new_unit(client, pool, available=2)
    siblings = await new_request(client, n_children=3)
    r = await refused(
        pool,
        hold(client, siblings, "unit", unit["id"]),
        409,
        [siblings["id"]],
        unit["id"],
        says="Places insuffisantes",
    )
    assert r.json()["available"] == 2 and r.json()["requested"] == 3
    carer = await new_carer(client, pool, capacity=2, available=1)
    pair = await new_request(client, n_children=2)
    await refused(
        pool,
        hold(client, pair, "carer", carer["id"]),
        409,
        [pair["id"]],
        carer_id=carer["id"],
        says="Places insuffisantes",
    )


async def test_unit_that_never_declared_is_409(client, pool):
    s = await make_structure(pool)
    request = await new_request(client)
    r = await refused(
        pool, hold(client, request, "unit", str(s["unit_ids"][0])), 409, [request["id"]]
    )
    assert "jamais déclaré" in r.json()["detail"]


async def test_unknown_targets_and_ids(client, pool):
    request = await new_request(client)
    ids = [request["id"]]
    r = await refused(pool, hold(client, request, "unit", str(uuid.uuid4())), 422, ids)
    assert r.json()["errors"][0]["field"] == "target.id"
    r = await refused(pool, hold(client, request, "carer", str(uuid.uuid4())), 422, ids)
    assert r.json()["errors"][0]["field"] == "target.id"
    r = await refused(pool, hold(client, request, "bed", str(uuid.uuid4())), 422, ids)
    assert r.json()["errors"][0]["field"] == "target.kind"
    r = await refused(pool, hold(client, request, "unit", "nope"), 422, ids)
    assert r.json()["errors"][0]["field"] == "target.id"
    r = await client.post(
        "/v1/holds",
        json={"request_id": str(uuid.uuid4()), "target": {"kind": "unit", "id": str(uuid.uuid4())}},
        headers=dept(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "request_id"
    unit = await new_unit(client, pool)
    for minutes in (0, 10081):
        r = await refused(
            pool,
            hold(client, request, "unit", unit["id"], expires_in_minutes=minutes),
            422,
            ids,
            unit["id"],
        )
        assert r.json()["errors"][0]["field"] == "expires_in_minutes"
    for url in (f"/v1/holds/{uuid.uuid4()}/admit", f"/v1/holds/{uuid.uuid4()}/release"):
        r = await client.post(url, headers=dept())
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.post(
        f"/v1/placements/{uuid.uuid4()}/exit", json={"reason": "x"}, headers=dept()
    )
    assert r.status_code == 404


async def test_expires_in_minutes_sets_the_deadline(client, pool):
    unit = await new_unit(client, pool)
    request = await new_request(client)
    r = await hold(client, request, "unit", unit["id"], expires_in_minutes=90)
    async with pool.acquire() as conn:
        minutes = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) / 60 FROM holds WHERE id = $1",
            uuid.UUID(r.json()["id"]),
        )
    assert round(minutes) == 90
    r = await client.get(f"/v1/holds/{r.json()['id']}", headers=unit["headers"])
    assert r.status_code == 200 and r.json()["status"] == "held"
