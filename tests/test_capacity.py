"""Capacity declarations: validation, idempotency, optimistic concurrency, scope, atomicity."""

import asyncio
import uuid

import asyncpg
import pytest

from tests.support.factories import bearer, idem, make_structure


@pytest.fixture
async def unit(pool):
    s = await make_structure(pool)
    return {
        "id": str(s["unit_ids"][0]),
        "finess": s["finess"],
        "headers": bearer("structure", finess=s["finess"]),
    }


async def counts(pool, unit_id: str) -> dict[str, int]:
    async with pool.acquire() as conn:
        return dict(
            await conn.fetchrow(
                """
            SELECT (SELECT count(*) FROM capacity_declarations WHERE unit_id = $1) AS history,
                   (SELECT count(*) FROM capacity_snapshots WHERE unit_id = $1) AS snapshots,
                   (SELECT count(*) FROM outbox_events WHERE data->>'unit_id' = $1::text) AS events,
                   (SELECT count(*) FROM audit_entries WHERE object_id = $1::text) AS audits
            """,
                uuid.UUID(unit_id),
            )
        )


async def put(client, unit, body, headers=None, key=None):
    h = {**unit["headers"], "Idempotency-Key": key or str(uuid.uuid4()), **(headers or {})}
    return await client.put(f"/v1/units/{unit['id']}/capacity", json=body, headers=h)


async def test_declaration_writes_history_snapshot_event_audit(client, pool, unit):
    r = await put(
        client,
        unit,
        {"temporality": "current", "installed": 10, "occupied": 7, "reserved": 1, "available": 2},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["available"] == 2 and body["occupied"] == 7
    assert body["declared_by"] == f"structure-{unit['finess']}"
    assert r.headers["etag"] == '"1"'
    assert await counts(pool, unit["id"]) == {
        "history": 1,
        "snapshots": 1,
        "events": 1,
        "audits": 1,
    }
    async with pool.acquire() as conn:
        event = await conn.fetchrow(
            "SELECT type, department, data FROM outbox_events WHERE data->>'unit_id' = $1",
            unit["id"],
        )
    assert event["type"] == "capacity.updated" and event["department"] == "69"
    assert event["data"]["version"] == 1


async def test_omitted_fields_keep_last_value(client, unit):
    await put(client, unit, {"temporality": "current", "occupied": 8, "closed": 1, "available": 1})
    r = await put(client, unit, {"temporality": "current", "available": 0})
    assert r.status_code == 200
    assert (r.json()["occupied"], r.json()["closed"], r.json()["available"]) == (8, 1, 0)
    assert r.json()["version"] == 2


async def test_temporalities_are_independent(client, unit):
    await put(client, unit, {"temporality": "current", "occupied": 10, "available": 0})
    r = await put(client, unit, {"temporality": "d7", "occupied": 8, "available": 2})
    assert r.json()["version"] == 1 and r.json()["temporality"] == "d7"


async def test_idempotent_replay_writes_nothing_twice(client, pool, unit):
    body = {"temporality": "current", "occupied": 5, "available": 3}
    first = await put(client, unit, body, key="same-key")
    second = await put(client, unit, body, key="same-key")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert await counts(pool, unit["id"]) == {
        "history": 1,
        "snapshots": 1,
        "events": 1,
        "audits": 1,
    }


async def test_concurrent_replays_write_once(client, pool, unit):
    body = {"temporality": "current", "occupied": 4, "available": 4}
    results = await asyncio.gather(*(put(client, unit, body, key="race-key") for _ in range(8)))
    assert {r.status_code for r in results} == {200}
    assert len({r.json()["version"] for r in results}) == 1
    assert (await counts(pool, unit["id"]))["history"] == 1


async def test_same_key_other_body_is_422(client, pool, unit):
    await put(client, unit, {"temporality": "current", "available": 3}, key="k1")
    r = await put(client, unit, {"temporality": "current", "available": 2}, key="k1")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert (await counts(pool, unit["id"]))["history"] == 1


async def test_missing_idempotency_key(client, unit):
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers=unit["headers"],
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 428
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_stale_if_match_is_409(client, pool, unit):
    await put(client, unit, {"temporality": "current", "available": 3})
    await put(client, unit, {"temporality": "current", "available": 2}, {"If-Match": '"1"'})
    r = await put(client, unit, {"temporality": "current", "available": 1}, {"If-Match": '"1"'})
    assert r.status_code == 409
    assert r.json()["current_version"] == 2
    assert (await counts(pool, unit["id"]))["history"] == 2
    ok = await put(client, unit, {"temporality": "current", "available": 1}, {"If-Match": 'W/"2"'})
    assert ok.status_code == 200 and ok.json()["version"] == 3


async def test_if_match_on_first_declaration_is_version_zero(client, unit):
    r = await put(client, unit, {"temporality": "h24", "available": 1}, {"If-Match": "0"})
    assert r.status_code == 200
    r = await put(client, unit, {"temporality": "h48", "available": 1}, {"If-Match": "abc"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "If-Match"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"temporality": "current", "available": -1}, "available"),
        ({"temporality": "current", "available": 1, "occupied": -2}, "occupied"),
        ({"temporality": "current", "available": 1, "reserved": "two"}, "reserved"),
        ({"temporality": "current", "available": 1, "closed": 1.5}, "closed"),
        ({"temporality": "current", "available": 1, "installed": 10**7}, "installed"),
        ({"temporality": "now", "available": 1}, "temporality"),
        ({"temporality": "current"}, "available"),
        ({"available": 1}, "temporality"),
        ({"temporality": "current", "available": 1, "available_gender": "X"}, "available_gender"),
        ({"temporality": "current", "available": 1, "child_name": "Léa"}, "child_name"),
        ({"temporality": "current", "installed": 10, "occupied": 9, "available": 2}, "available"),
        (
            {
                "temporality": "current",
                "installed": 4,
                "additional": 1,
                "occupied": 3,
                "reserved": 1,
                "closed": 1,
                "available": 1,
            },
            "available",
        ),
    ],
)
async def test_bad_counts_are_422_naming_the_field(client, pool, unit, body, field):
    r = await put(client, unit, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await counts(pool, unit["id"]) == {
        "history": 0,
        "snapshots": 0,
        "events": 0,
        "audits": 0,
    }


async def test_additional_places_raise_the_ceiling(client, unit):
    r = await put(
        client,
        unit,
        {
            "temporality": "current",
            "installed": 10,
            "additional": 1,
            "occupied": 10,
            "available": 1,
        },
    )
    assert r.status_code == 200


async def test_other_structure_is_403(client, pool, unit):
    other = await make_structure(pool, department="01", commune="01053")
    headers = {**bearer("structure", finess=other["finess"]), **idem()}
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers=headers,
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 403
    for role in (bearer("department", authority="69M"), bearer("national")):
        r = await client.put(
            f"/v1/units/{unit['id']}/capacity",
            headers={**role, **idem()},
            json={"temporality": "current", "available": 1},
        )
        assert r.status_code == 403
    assert (await counts(pool, unit["id"]))["history"] == 0


async def test_the_operator_may_declare(client, unit):
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers={**bearer("operator"), **idem()},
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 200


async def test_unknown_unit_is_404_and_bad_id_422(client):
    headers = {**bearer("operator"), **idem()}
    r = await client.put(
        f"/v1/units/{uuid.uuid4()}/capacity",
        headers=headers,
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.put(
        "/v1/units/not-a-uuid/capacity",
        headers=headers,
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "unit_id"


async def test_malformed_json_and_huge_body(client, pool, unit):
    h = {**unit["headers"], **idem(), "Content-Type": "application/json"}
    r = await client.put(f"/v1/units/{unit['id']}/capacity", headers=h, content=b'{"temporality": ')
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    huge = b'{"temporality": "current", "available": 1, "pad": "' + b"x" * 200_000 + b'"}'
    r = await client.put(f"/v1/units/{unit['id']}/capacity", headers=h, content=huge)
    assert r.status_code == 413
    r = await client.put(f"/v1/units/{unit['id']}/capacity", headers=h, content=b"[1, 2]")
    assert r.status_code == 422
    assert await counts(pool, unit["id"]) == {
        "history": 0,
        "snapshots": 0,
        "events": 0,
        "audits": 0,
    }


async def test_change_and_outbox_commit_together_or_not_at_all(client, pool, owner_pool, unit):
    """Force a failure after the history and snapshot writes (the outbox insert raises):
    neither the change nor its event may exist afterwards. The trigger is the owner's DDL."""
    async with owner_pool.acquire() as conn:
        await conn.execute(
            """
            CREATE FUNCTION test_fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'forced failure'; END $$;
            CREATE TRIGGER test_fail_outbox BEFORE INSERT ON outbox_events
               FOR EACH ROW EXECUTE FUNCTION test_fail_outbox();
            """
        )
    try:
        r = await put(client, unit, {"temporality": "current", "occupied": 2, "available": 5})
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert "forced" not in r.text and "Traceback" not in r.text
    finally:
        async with owner_pool.acquire() as conn:
            await conn.execute(
                "DROP TRIGGER test_fail_outbox ON outbox_events; DROP FUNCTION test_fail_outbox();"
            )
    assert await counts(pool, unit["id"]) == {
        "history": 0,
        "snapshots": 0,
        "events": 0,
        "audits": 0,
    }
    # The key was rolled back with the change: the client can retry with it.
    r = await put(client, unit, {"temporality": "current", "occupied": 2, "available": 5})
    assert r.status_code == 200


async def test_database_refuses_broken_invariants_directly(pool, unit):
    """The constraints live in the database too, not only in the API."""
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                """
                INSERT INTO capacity_snapshots (unit_id, temporality, version, declared_at,
                    declared_by, source, installed, occupied, reserved, closed, available,
                    additional, available_gender)
                VALUES ($1, 'current', 1, now(), 't', 't', 5, 5, 0, 0, 1, 0, 'any')
                """,
                uuid.UUID(unit["id"]),
            )
