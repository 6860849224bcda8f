"""Agréments owned by the issuing authority (#15): registration, the issuer's list, edits
under If-Match, suspension / reinstatement / withdrawal with their consequences on holds
and placements, renewal requests, and who may do what — against the real app and database.

Persons act under a function (``pmi_agrement``, ``orientation_officer``) granted by the
authority's administrator, as in tests/test_habilitations.py; local role tokens stand for
the rest (another authority's service, a carer, the operator, a structure)."""

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import issue_token
from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    hold,
    idem,
    make_structure,
    new_request,
)

ADMIN = bearer("authority_admin", authority=AUTHORITY)


async def person_with(client: httpx.AsyncClient, function: str, authority: str = AUTHORITY):
    """The header of a new person acting under ``function`` on ``authority``."""
    sub = f"agent-{uuid.uuid4().hex[:10]}"
    admin = bearer("authority_admin", authority=authority)
    r = await client.post(
        f"/v1/authorities/{authority}/habilitations",
        json={"sub": sub, "function": function},
        headers={**admin, **idem()},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {issue_token(None, sub=sub)}"}


@pytest.fixture
async def pmi(client):
    return await person_with(client, "pmi_agrement")


def number() -> str:
    return f"AF-69-{uuid.uuid4().hex[:8].upper()}"


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "number": number(),
        "commune": "69266",
        "home": {"lat": 45.7731, "lon": 4.8921},
        "issued_on": (date.today() - timedelta(days=100)).isoformat(),
        "capacity": 3,
        "age_min_months": 0,
        "age_max_months": 227,
        "timings": ["durable", "urgence"],
        "publics": ["mineur"],
        "formulas": ["enfant"],
    }
    b.update(over)
    return b


async def register(client, headers, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/agrements", json=body(**over), headers={**headers, **idem()})
    assert r.status_code == 201, r.text
    return r.json()


def at(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"', **idem()}


async def declare(client, carer_id: str, places: int) -> None:
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=bearer("carer", carer_id=carer_id),
        json={"available_places": places, "status": "active"},
    )
    assert r.status_code == 200, r.text


async def carer_row(pool: asyncpg.Pool, carer_id: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM foster_carers WHERE id = $1", uuid.UUID(carer_id))


async def outbox(pool, event_type: str, key: str, value: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT authority, data, national_data FROM outbox_events"
            f" WHERE type = $1 AND data->>'{key}' = $2 ORDER BY id",
            event_type,
            value,
        )


# --- registration ------------------------------------------------------------------------


async def test_the_issuer_registers_a_carer(client, pool, pmi):
    b = body()
    r = await client.post("/v1/agrements", json=b, headers={**pmi, **idem()})
    assert r.status_code == 201, r.text
    out = r.json()
    assert (
        r.headers["ETag"] == '"1"' and r.headers["Location"] == f"/v1/agrements/{out['carer_id']}"
    )
    issued = date.fromisoformat(b["issued_on"])
    assert out["valid_until"] == issued.replace(year=issued.year + 5).isoformat()  # L421-3
    assert out["issuing_authority"] == "69M" and out["department"] == "69"
    assert out["state"] == "valid" and out["derogation"] is None
    assert out["employer"] == {"kind": "authority", "authority": "69M"}
    assert out["open_to_other_authorities"] is False
    assert "home" not in out and "location" not in r.text
    row = await carer_row(pool, out["carer_id"])
    assert row["available_places"] == 0 and row["declared_by"].startswith("agent-")
    assert row["preferred_timings"] == ["durable", "urgence"]
    assert (out["age_min_months"], out["age_max_months"], out["age_max"]) == (0, 227, 18)
    assert out["care_modes"] == ["durable", "urgence"]  # deprecated, derived
    async with pool.acquire() as conn:
        audit = await conn.fetchrow(
            "SELECT function, authority FROM audit_entries"
            " WHERE action = 'agrement.register' AND object_id = $1",
            out["carer_id"],
        )
    assert audit["function"] == "pmi_agrement" and audit["authority"] == "69M"
    rows = await outbox(pool, "carer.agrement_updated", "carer_id", out["carer_id"])
    assert [r["authority"] for r in rows] == ["69M"]
    assert rows[0]["national_data"] == {
        "department": "69",
        "authority": "69M",
        "action": "register",
        "carer_count": {"valid": 1},
        "available_places": 0,
    }


async def test_a_placement_service_employs_and_both_feeds_hear(client, pool, pmi):
    service = await make_structure(pool, department="01", commune="01053", category="236")
    out = await register(client, pmi, employer={"finess": service["finess"]})
    assert out["employer"]["kind"] == "structure"
    assert out["employer"]["finess"] == service["finess"]
    assert out["open_to_other_authorities"] is True  # a service's carer: open by default
    rows = await outbox(pool, "carer.agrement_updated", "carer_id", out["carer_id"])
    assert sorted(r["authority"] for r in rows) == ["01", "69M"]
    # The employing placement service reads its carer's agrément.
    r = await client.get(
        f"/v1/agrements/{out['carer_id']}", headers=bearer("structure", finess=service["finess"])
    )
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"capacity": 4}, "capacity"),  # above 3 without a derogation (L421-5)
        ({"capacity": 7, "derogation": {"children": 6, "reason": "fratrie"}}, "capacity"),
        (
            {"capacity": 5, "derogation": {"children": 4, "reason": "fratrie"}},
            "derogation.children",
        ),
        (
            {"capacity": 5, "derogation": {"children": 7, "reason": "fratrie"}},
            "derogation.children",
        ),
        ({"capacity": 4, "derogation": {"children": 4, "reason": "amitie"}}, "derogation.reason"),
        ({"valid_until": "2020-01-01", "issued_on": "2021-01-01"}, "valid_until"),
        (
            {
                "capacity": 4,
                "issued_on": "2024-01-01",
                "valid_until": "2029-01-01",
                "derogation": {"children": 4, "reason": "fratrie", "until": "2030-01-01"},
            },
            "derogation.until",
        ),
        ({"age_min_months": 144, "age_max_months": 72}, "age_min_months"),
        (
            {"age_min": 12, "age_max": 6, "age_min_months": None, "age_max_months": None},
            "age_min",
        ),
        ({"employer": {"authority": "69M", "finess": "690000018"}}, "employer"),
        ({"employer": {"authority": "ZZ"}}, "employer"),
        ({"commune": "99999"}, "commune"),
        ({"home": {"lat": 10.0, "lon": -40.0}}, "home"),
        ({"timings": []}, "timings"),
        ({"care_modes": ["durable"]}, "care_modes"),  # deprecated, beside timings
    ],
)
async def test_bad_registrations_name_the_field_and_write_nothing(client, pool, pmi, over, field):
    b = body(**over)
    r = await client.post("/v1/agrements", json=b, headers={**pmi, **idem()})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == field, r.json()
    async with pool.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM foster_carers WHERE agrement_number = $1", b["number"]
        )


async def test_an_employer_that_is_not_a_placement_service_is_refused(client, pool, pmi):
    mecs = await make_structure(pool, category="177")
    r = await client.post(
        "/v1/agrements", json=body(employer={"finess": mecs["finess"]}), headers=pmi
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "employer"


async def test_only_the_communes_agrement_service_registers(client, pool):
    officer = await person_with(client, "orientation_officer")
    for headers, status in (
        (dept("13"), 403),  # another authority (its local token has agrement.manage)
        (officer, 403),  # the issuer's placement officer: no agrement.manage
        (bearer("carer", carer_id=str(uuid.uuid4())), 403),
        (bearer("operator"), 403),
        (bearer("national"), 403),
    ):
        b = body()
        r = await client.post("/v1/agrements", json=b, headers={**headers, **idem()})
        assert r.status_code == status, (headers, r.text)
    r = await client.post(
        "/v1/agrements",
        json=body(commune="13055", home={"lat": 43.29, "lon": 5.38}),
        headers=dept("69M"),
    )
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "commune"


async def test_a_number_is_registered_once(client, pmi):
    b = body()
    assert (await client.post("/v1/agrements", json=b, headers=pmi)).status_code == 201
    r = await client.post("/v1/agrements", json=b, headers=pmi)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "number"


# --- list and read -----------------------------------------------------------------------


async def test_the_issuers_list_filters_and_orders(client, pool, pmi):
    today = date.today()
    later = await register(client, pmi, issued_on=(today - timedelta(days=400)).isoformat())
    soon = await register(
        client,
        pmi,
        issued_on=(today - timedelta(days=1700)).isoformat(),
        capacity=4,
        derogation={"children": 5, "reason": "fratrie"},
    )
    gone = await register(client, pmi)
    async with pool.acquire() as conn:  # expired: derived from the date, never stored
        await conn.execute(
            "UPDATE foster_carers SET issued_on = current_date - 2000,"
            " valid_until = current_date - 1 WHERE id = $1",
            uuid.UUID(gone["carer_id"]),
        )
    mine = {later["carer_id"], soon["carer_id"], gone["carer_id"]}

    async def listed(**params: Any) -> list[str]:
        r = await client.get("/v1/agrements", params={"limit": 500, **params}, headers=pmi)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        dates = [i["valid_until"] for i in items]
        assert dates == sorted(dates)
        return [i["carer_id"] for i in items if i["carer_id"] in mine]

    assert await listed() == [gone["carer_id"], soon["carer_id"], later["carer_id"]]
    assert await listed(state="expired") == [gone["carer_id"]]
    assert await listed(state="valid") == [soon["carer_id"], later["carer_id"]]
    assert await listed(expiring_within_days=183) == [soon["carer_id"]]
    assert await listed(derogation="true") == [soon["carer_id"]]
    r = await client.get(f"/v1/agrements/{gone['carer_id']}", headers=pmi)
    assert r.json()["state"] == "expired"
    assert (await client.get("/v1/agrements", params={"state": "lost"}, headers=pmi)).json()[
        "errors"
    ][0]["field"] == "state"
    # Another authority lists its own: none of ours.
    r = await client.get("/v1/agrements", params={"limit": 500}, headers=dept("13"))
    assert not {i["carer_id"] for i in r.json()["items"]} & mine


async def test_who_reads_an_agrement(client, pmi):
    out = await register(client, pmi, employer={"authority": "01"})
    url = f"/v1/agrements/{out['carer_id']}"
    officer = await person_with(client, "orientation_officer")
    for headers, status in (
        (pmi, 200),
        (officer, 200),  # the issuer's carers.read
        (bearer("carer", carer_id=out["carer_id"]), 200),
        (dept("01"), 200),  # the employing authority
        (bearer("carer", carer_id=str(uuid.uuid4())), 403),
        (dept("13"), 403),
        (bearer("structure", finess="690000018"), 403),
        (bearer("operator"), 403),
    ):
        r = await client.get(url, headers=headers)
        assert r.status_code == status, (headers, r.text)
    r = await client.get(f"/v1/agrements/{uuid.uuid4()}", headers=pmi)
    assert r.status_code == 404


# --- edits -------------------------------------------------------------------------------


async def test_edit_requires_the_current_version(client, pool, pmi):
    out = await register(client, pmi)
    url = f"/v1/agrements/{out['carer_id']}"
    r = await client.patch(url, json={"capacity": 2}, headers={**pmi, **idem()})
    assert r.status_code == 428 and r.json()["errors"][0]["field"] == "If-Match"
    r = await client.patch(url, json={"capacity": 2}, headers={**pmi, **at(7)})
    assert r.status_code == 409 and r.json()["current_version"] == 1
    r = await client.patch(url, json={"capacity": 2}, headers={**pmi, **at(1)})
    assert r.status_code == 200, r.text
    assert r.json()["capacity"] == 2 and r.headers["ETag"] == '"2"'
    assert (await carer_row(pool, out["carer_id"]))["agrement_version"] == 2


async def test_a_narrower_agrement_clips_the_carers_part(client, pool, pmi):
    out = await register(client, pmi, capacity=3, timings=["durable", "urgence"])
    carer_id = out["carer_id"]
    await declare(client, carer_id, 3)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE foster_carers SET preferred_age_min_months = 120,"
            " preferred_age_max_months = 203 WHERE id = $1",
            uuid.UUID(carer_id),
        )
    before = await carer_row(pool, carer_id)
    r = await client.patch(
        f"/v1/agrements/{carer_id}",
        json={"capacity": 2, "age_max_months": 155, "timings": ["durable"]},
        headers={**pmi, **at(1)},
    )
    assert r.status_code == 200, r.text
    row = await carer_row(pool, carer_id)
    assert (row["agrement_capacity"], row["available_places"]) == (2, 2)
    assert (row["preferred_age_min_months"], row["preferred_age_max_months"]) == (120, 155)
    assert row["preferred_timings"] == ["durable"]
    assert row["version"] == before["version"] + 1  # the carer's part moved
    async with pool.acquire() as conn:
        source = await conn.fetchval(
            "SELECT source FROM carer_declarations WHERE carer_id = $1 ORDER BY id DESC LIMIT 1",
            uuid.UUID(carer_id),
        )
    assert source == "agrement.edit"
    # Preferred ages outside the new range: the agrément's whole range.
    r = await client.patch(
        f"/v1/agrements/{carer_id}",
        json={"age_min": 0, "age_max": 6},  # deprecated years: 0–83 months
        headers={**pmi, **at(2)},
    )
    assert r.status_code == 200, r.text
    row = await carer_row(pool, carer_id)
    assert (row["preferred_age_min_months"], row["preferred_age_max_months"]) == (0, 83)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"capacity": 4}, "capacity"),
        ({"capacity": 7}, "capacity"),
        ({"valid_until": "2000-01-01"}, "valid_until"),
        (
            {"capacity": 6, "derogation": {"children": 5, "reason": "fratrie"}},
            "derogation.children",
        ),
        ({"capacity": None}, "capacity"),
        ({"number": "AF-1"}, "number"),
    ],
)
async def test_bad_edits_name_the_field_and_write_nothing(client, pool, pmi, patch, field):
    out = await register(client, pmi)
    r = await client.patch(f"/v1/agrements/{out['carer_id']}", json=patch, headers={**pmi, **at(1)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    row = await carer_row(pool, out["carer_id"])
    assert row["agrement_version"] == 1 and row["agrement_capacity"] == 3


async def test_a_derogation_is_recorded_then_removed(client, pool, pmi):
    out = await register(client, pmi)
    url = f"/v1/agrements/{out['carer_id']}"
    r = await client.patch(
        url,
        json={"capacity": 5, "derogation": {"children": 5, "reason": "fratrie"}},
        headers={**pmi, **at(1)},
    )
    assert r.status_code == 200 and r.json()["derogation"]["children"] == 5
    r = await client.patch(url, json={"derogation": None}, headers={**pmi, **at(2)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "capacity"
    r = await client.patch(url, json={"derogation": None, "capacity": 3}, headers={**pmi, **at(2)})
    assert r.status_code == 200 and r.json()["derogation"] is None


async def test_nobody_but_the_issuers_service_decides(client, pool, pmi):
    out = await register(client, pmi)
    carer_id = out["carer_id"]
    officer = await person_with(client, "orientation_officer")
    suspend = {"reason": "enquete_administrative"}
    for headers in (
        dept("13"),  # another department
        await person_with(client, "pmi_agrement", "13"),
        officer,
        bearer("carer", carer_id=carer_id),
        bearer("operator"),
        bearer("national"),
    ):
        r = await client.patch(
            f"/v1/agrements/{carer_id}", json={"capacity": 2}, headers={**headers, **at(1)}
        )
        assert r.status_code == 403, (headers, r.text)
        r = await client.post(
            f"/v1/agrements/{carer_id}/suspend", json=suspend, headers={**headers, **at(1)}
        )
        assert r.status_code == 403, (headers, r.text)
    assert (await carer_row(pool, carer_id))["agrement_version"] == 1
    # The authority's administrator decides too.
    r = await client.post(
        f"/v1/agrements/{carer_id}/suspend", json=suspend, headers={**ADMIN, **at(1)}
    )
    assert r.status_code == 200, r.text


# --- suspension, its consequences, reinstatement, withdrawal ------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "reason"),
        ({"reason": "humeur"}, "reason"),
        ({"reason": "sante", "from": "2000-01-01"}, "from"),
        ({"reason": "sante", "until": (date.today() - timedelta(days=1)).isoformat()}, "until"),
        ({"reason": "sante", "until": (date.today() + timedelta(days=130)).isoformat()}, "until"),
    ],
)
async def test_bad_suspensions_name_the_field(client, pool, pmi, payload, field):
    out = await register(client, pmi)
    r = await client.post(
        f"/v1/agrements/{out['carer_id']}/suspend", json=payload, headers={**pmi, **at(1)}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    row = await carer_row(pool, out["carer_id"])
    assert row["agrement_state"] == "valid" and row["agrement_version"] == 1


async def test_suspension_releases_holds_and_puts_placements_to_review(client, pool, pmi):
    # Lyon's carer, employed by the Rhône (69D); children of the Métropole (69M) placed.
    # Held below by 69M (the placing authority): 69D opened its employee to others.
    out = await register(client, pmi, employer={"authority": "69D"}, open_to_other_authorities=True)
    carer_id = out["carer_id"]
    await declare(client, carer_id, 3)
    placed_request = await new_request(client)
    held_request = await new_request(client)
    placed = await hold(client, placed_request, "carer", carer_id)
    assert placed.status_code == 201, placed.text
    placed_id = placed.json()["id"]
    r = await client.post(f"/v1/holds/{placed_id}/admit", headers=dept())
    assert r.status_code == 200, r.text
    pending = await hold(client, held_request, "carer", carer_id)
    assert pending.status_code == 201, pending.text
    pending_id = pending.json()["id"]

    until = (date.today() + timedelta(days=60)).isoformat()
    r = await client.post(
        f"/v1/agrements/{carer_id}/suspend",
        json={"reason": "enquete_administrative", "until": until},
        headers={**pmi, **at(1)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "suspended"
    assert r.json()["suspension"] == {
        "from": date.today().isoformat(),
        "until": until,
        "reason": "enquete_administrative",
    }
    row = await carer_row(pool, carer_id)
    assert row["available_places"] == 0
    # The pending hold: released with the coded reason, its request waiting again.
    r = await client.get(f"/v1/holds/{pending_id}", headers=dept())
    assert r.json()["status"] == "released" and r.json()["reason_code"] == "agrement_suspendu"
    assert r.json()["reason"] is None
    assert r.json()["request_status"] == "waiting"
    async with pool.acquire() as conn:
        history = await conn.fetchrow(
            "SELECT event, reason_code FROM request_events WHERE request_id = $1"
            " ORDER BY id DESC LIMIT 1",
            uuid.UUID(held_request["id"]),
        )
    assert (history["event"], history["reason_code"]) == ("released", "agrement_suspendu")
    released = await outbox(pool, "hold.released", "id", pending_id)
    # The holding authority's feed, and a copy on the employer's (another authority).
    assert [e["authority"] for e in released] == ["69M", "69D"]
    # The placed child: to review, for the placing and the employing authorities.
    for headers in (dept("69M"), dept("69D")):
        r = await client.get("/v1/placements/to-review", headers=headers)
        assert r.status_code == 200, r.text
        items = [i for i in r.json()["items"] if i["placement_id"] == placed_id]
        assert len(items) == 1 and items[0]["agrement_state"] == "suspended"
        assert items[0]["suspension_reason"] == "enquete_administrative"
    r = await client.get("/v1/placements/to-review", headers=dept("13"))
    assert placed_id not in {i["placement_id"] for i in r.json()["items"]}
    assert (
        await client.get("/v1/placements/to-review", headers=bearer("carer", carer_id=carer_id))
    ).status_code == 403
    to_review = await outbox(pool, "placement.to_review", "placement_id", placed_id)
    assert sorted(e["authority"] for e in to_review) == ["69D", "69M"]
    assert all("request_id" not in e["data"] for e in to_review)
    decided = await outbox(pool, "carer.agrement_updated", "carer_id", carer_id)
    assert [(e["authority"], e["data"]["action"]) for e in decided[-2:]] == [
        ("69M", "suspend"),
        ("69D", "suspend"),
    ]
    # The nation counts the carer once: on the issuer's event, not the employer's copy.
    assert decided[-2]["national_data"]["carer_count"] == {"valid": -1, "suspended": 1}
    assert decided[-1]["national_data"]["carer_count"] == {}
    assert [e["national_data"] for e in to_review] == [{}, {}]  # not national (#18)
    # No direct write slips through: the trigger refuses free places on a suspended agrément.
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(
                "UPDATE foster_carers SET available_places = 1 WHERE id = $1",
                uuid.UUID(carer_id),
            )
    assert refused.value.constraint_name == "foster_carers_agrement_valid"
    # A new hold is refused.
    r = await hold(client, held_request, "carer", carer_id)
    assert r.status_code in (409, 422), r.text

    # Reinstated: valid again, the placement no longer to review, places still 0.
    r = await client.post(f"/v1/agrements/{carer_id}/reinstate", json={}, headers={**pmi, **at(2)})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "valid" and r.json()["suspension"] is None
    assert (await carer_row(pool, carer_id))["available_places"] == 0
    r = await client.get("/v1/placements/to-review", headers=dept("69M"))
    assert placed_id not in {i["placement_id"] for i in r.json()["items"]}
    r = await client.post(f"/v1/agrements/{carer_id}/reinstate", json={}, headers={**pmi, **at(3)})
    assert r.status_code == 409


async def test_a_replayed_suspension_writes_once(client, pool, pmi):
    out = await register(client, pmi)
    headers = {**pmi, **at(1)}
    url = f"/v1/agrements/{out['carer_id']}/suspend"
    first = await client.post(url, json={"reason": "sante"}, headers=headers)
    again = await client.post(url, json={"reason": "sante"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = await client.post(url, json={"reason": "procedure_penale"}, headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM audit_entries WHERE action = 'agrement.suspend'"
                " AND object_id = $1",
                out["carer_id"],
            )
            == 1
        )
    assert (await carer_row(pool, out["carer_id"]))["agrement_version"] == 2


async def test_withdrawal_is_final(client, pool, pmi):
    out = await register(client, pmi)
    carer_id = out["carer_id"]
    await declare(client, carer_id, 2)
    url = f"/v1/agrements/{carer_id}/withdraw"
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    for payload, field in (
        ({}, "reason"),
        ({"reason": "lassitude"}, "reason"),
        ({"reason": "maltraitance", "on": tomorrow}, "on"),
    ):
        r = await client.post(url, json=payload, headers={**pmi, **at(1)})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    r = await client.post(url, json={"reason": "maltraitance"}, headers={**pmi, **at(1)})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "withdrawn"
    assert r.json()["withdrawal"] == {"on": date.today().isoformat(), "reason": "maltraitance"}
    assert (await carer_row(pool, carer_id))["available_places"] == 0
    for path, payload in (("reinstate", {}), ("suspend", {"reason": "sante"})):
        r = await client.post(
            f"/v1/agrements/{carer_id}/{path}", json=payload, headers={**pmi, **at(2)}
        )
        assert r.status_code == 409, r.text
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=bearer("carer", carer_id=carer_id),
        json={"available_places": 1, "status": "active"},
    )
    assert r.status_code >= 400  # no free place on a withdrawn agrément


async def test_the_carer_asks_for_renewal(client, pool, pmi):
    out = await register(client, pmi)
    url = f"/v1/agrements/{out['carer_id']}/renewal-request"
    carer = bearer("carer", carer_id=out["carer_id"])
    r = await client.post(
        url, json={}, headers={**bearer("carer", carer_id=str(uuid.uuid4())), **at(1)}
    )
    assert r.status_code == 403
    r = await client.post(url, json={}, headers={**dept("13"), **at(1)})
    assert r.status_code == 403
    r = await client.post(url, json={"requested_on": "2099-01-01"}, headers={**carer, **at(1)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "requested_on"
    r = await client.post(url, json={}, headers={**carer, **at(1)})
    assert r.status_code == 200, r.text
    assert r.json()["renewal_requested_on"] == date.today().isoformat()
    # The carer cannot touch the agrément itself.
    r = await client.patch(
        f"/v1/agrements/{out['carer_id']}", json={"capacity": 1}, headers={**carer, **at(2)}
    )
    assert r.status_code == 403


async def test_a_suspension_racing_the_workflow_neither_deadlocks_nor_leaves_a_hold(
    client, pool, pmi
):
    """Lock order hold → request → carer: a suspension and, at the same time, releases and
    admissions of the carer's holds all finish (no deadlock, no 500), and no hold is left
    pending on the suspended carer."""
    out = await register(client, pmi)
    carer_id = out["carer_id"]
    await declare(client, carer_id, 3)
    holds = []
    for _ in range(3):
        r = await hold(client, await new_request(client), "carer", carer_id)
        assert r.status_code == 201, r.text
        holds.append(r.json()["id"])
    answers = await asyncio.gather(
        client.post(f"/v1/holds/{holds[0]}/release", json={"reason": "x"}, headers=dept()),
        client.post(
            f"/v1/agrements/{carer_id}/suspend",
            json={"reason": "situation_de_danger"},
            headers={**pmi, **at(1)},
        ),
        client.post(f"/v1/holds/{holds[1]}/admit", headers=dept()),
        client.post(f"/v1/holds/{holds[2]}/release", json={"reason": "x"}, headers=dept()),
    )
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    assert answers[1].status_code == 200, answers[1].text
    async with pool.acquire() as conn:
        pending = await conn.fetchval(
            "SELECT count(*) FROM holds WHERE carer_id = $1 AND status = 'held'",
            uuid.UUID(carer_id),
        )
    assert pending == 0
    assert (await carer_row(pool, carer_id))["available_places"] == 0
