"""Control characters (NUL first: PostgreSQL refuses it) are a 422 naming the field, for
every route, and nothing is written (issue 14's list of the places that answered 500)."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.hostile import control_character_field
from tests.support.factories import (
    bearer,
    dept,
    hold,
    idem,
    make_structure,
    new_request,
    new_unit,
)

CONTROL = [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127)]


@pytest.mark.pure
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cc",)), max_size=20),
    st.sampled_from(CONTROL),
    st.integers(min_value=0, max_value=20),
)
def test_a_control_character_is_found_where_it_is(text: str, control: str, at: int) -> None:
    dirty = text[:at] + control + text[at:]
    body = {"a": [1, {"clean": text}, {"dirty": dirty}]}
    assert control_character_field(body) == "a.2.dirty"
    assert control_character_field({"ok": text, "lines": "un\ndeux\tтрois\r"}) is None
    assert control_character_field({dirty: 1}) == dirty


def _refused(r, field: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    errors = r.json().get("errors")
    if errors is not None:  # problem+json; OperationOutcome under /fhir
        assert errors[0]["field"] == field


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit?object_id=%00",
        "/v1/audit?object_id=a%01b",
        "/ui/api/moi?finess=%00",
        "/fhir/Location?address-state=%00",
        "/v1/requests?status=waiting%00",
    ],
)
async def test_a_control_character_in_a_parameter_is_422(client, path):
    r = await client.get(path, headers=bearer("operator"))
    field = path.split("?")[1].split("=")[0]
    _refused(r, field)
    if path.startswith("/fhir"):
        assert r.headers["content-type"].startswith("application/fhir+json")
        assert r.json()["resourceType"] == "OperationOutcome"
    else:
        assert r.headers["content-type"] == "application/problem+json"


async def test_a_control_character_in_a_body_is_422_and_writes_nothing(client, pool):
    r = await client.post(
        "/ui/dev-token", json={"role": "structure", "finess": "69\u0000"}, headers={}
    )
    _refused(r, "finess")

    request = await new_request(client)
    for action in ("cancel",):
        r = await client.post(
            f"/v1/requests/{request['id']}/{action}",
            json={"reason": "mesure levée\u0000"},
            headers=dept(),
        )
        _refused(r, "reason")
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.json()["status"] == "waiting"

    s = await make_structure(pool)
    unit = {
        "name": "Unité\u0000",
        "age_min": 6,
        "age_max": 12,
        "sexes": ["F", "M"],
        "care_modes": ["durable"],
        "installed": 4,
    }
    headers = {**bearer("structure", finess=s["finess"]), **idem()}
    r = await client.post(f"/v1/structures/{s['id']}/units", json=unit, headers=headers)
    _refused(r, "name")
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM units WHERE structure_id = $1", s["id"]
        ) == len(s["unit_ids"])


@pytest.mark.parametrize("action", ["release", "exit", "refuse"])
async def test_reasons_of_every_transition_refuse_control_characters(client, pool, action):
    unit = await new_unit(client, pool, available=2)
    request = await new_request(client)
    r = await hold(client, request, "unit", unit["id"])
    assert r.status_code == 201, r.text
    held = r.json()
    if action == "exit":
        r = await client.post(f"/v1/holds/{held['id']}/admit", headers=dept())
        assert r.status_code == 200, r.text
    headers = unit["headers"] if action == "refuse" else dept()
    path = {
        "release": f"/v1/holds/{held['id']}/release",
        "refuse": f"/v1/holds/{held['id']}/refuse",
        "exit": f"/v1/placements/{held['id']}/exit",
    }[action]
    r = await client.post(path, json={"reason": f"raison\u0000{uuid.uuid4()}"}, headers=headers)
    _refused(r, "reason")


async def test_line_breaks_in_a_reason_are_accepted(client):
    request = await new_request(client)
    r = await client.post(
        f"/v1/requests/{request['id']}/cancel",
        json={"reason": "mesure levée\npar le juge"},
        headers=dept(),
    )
    assert r.status_code == 200, r.text
