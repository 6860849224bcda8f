"""Every scope is a competent authority (issue #13), through the API: the Métropole de Lyon and
the Département du Rhône share department 69 and see nothing of each other's; the Collectivité
de Corse has both Corsican departments, the Collectivité européenne d'Alsace both Alsatian
ones; a request belongs to its origin's authority (for a point, the nearest commune's); the
former ``department`` claim and parameters are understood when they name one authority, and
refused with the choices when they name two."""

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from api import authorities
from api.auth import decode_token, issue_token
from api.errors import Invalid
from api.requests.service import local_today
from api.settings import get_settings
from tests.support.factories import (
    bearer,
    dept,
    idem,
    make_carer,
    make_structure,
    new_unit,
    request_body,
)

LYON = "69123"
VILLEFRANCHE = "69264"  # Villefranche-sur-Saône: Rhône, outside the Métropole
AJACCIO, BASTIA = "2A004", "2B033"
STRASBOURG, MULHOUSE = "67482", "68224"
MARSEILLE = "13055"
ALL_CODES = list(authorities.authority_codes())


def body_from(commune: str | None = None, **override: Any) -> dict[str, Any]:
    """A request from ``commune`` whose department is left to the origin."""
    body = request_body(**override)
    del body["department"]
    if commune is not None:
        body["origin"] = {"commune": commune}
    return body


async def create(client: httpx.AsyncClient, authority: str, body: dict[str, Any]) -> dict:
    r = await client.post("/v1/requests", json=body, headers=dept(authority))
    assert r.status_code == 201, r.text
    return r.json()


def legacy_token(**claims: Any) -> dict[str, str]:
    """A token of the local issuer with the claims given (the former ``department`` one)."""
    settings = get_settings()
    issue_token("operator")  # makes sure the key pair exists
    now = int(time.time())
    payload = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "agent-legacy",
        "role": "department",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    key = (settings.keys_dir / "private.pem").read_bytes()
    return {"Authorization": f"Bearer {jwt.encode(payload, key, algorithm='ES256')}"}


def assert_choices(r: httpx.Response, status: int, field: str, choices: list[str]) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    error = r.json()["errors"][0]
    assert error["field"] == field and error["choices"] == choices, error


# --- Lyon: the Métropole (69M) and the Rhône (69D) -----------------------------------------


async def test_the_metropole_and_the_rhone_do_not_see_each_others_requests(client, pool):
    lyon = await create(client, "69M", body_from(LYON))
    villefranche = await create(client, "69D", body_from(VILLEFRANCHE))
    assert (lyon["authority"], lyon["department"]) == ("69M", "69")
    assert (villefranche["authority"], villefranche["department"]) == ("69D", "69")
    for request, own, other in ((lyon, "69M", "69D"), (villefranche, "69D", "69M")):
        rid = request["id"]
        for url in (f"/v1/requests/{rid}", f"/v1/requests/{rid}/history"):
            assert (await client.get(url, headers=dept(own))).status_code == 200
            r = await client.get(url, headers=dept(other))
            assert r.status_code == 403, r.text
            assert r.headers["content-type"] == "application/problem+json"
        r = await client.post(
            f"/v1/requests/{rid}/cancel", json={"reason": "x"}, headers=dept(other)
        )
        assert r.status_code == 403
        listed = await client.get("/v1/requests?limit=500", headers=dept(other))
        assert rid not in {i["id"] for i in listed.json()["items"]}
        trail = await client.get(f"/v1/audit?object_id={rid}", headers=dept(other))
        assert trail.json() == {"items": [], "total": 0}
        trail = await client.get(f"/v1/audit?object_id={rid}", headers=dept(own))
        assert trail.json()["total"] >= 1
        assert {i["authority"] for i in trail.json()["items"]} == {own}
    # Nor may one create a request for the other's territory.
    r = await client.post("/v1/requests", json=body_from(VILLEFRANCHE), headers=dept("69M"))
    assert r.status_code == 403


async def test_holds_follow_the_request_authority(client, pool):
    unit = await new_unit(client, pool, available=2)
    request = await create(client, "69M", body_from(LYON))
    target = {"kind": "unit", "id": unit["id"]}
    r = await client.post(
        "/v1/holds", json={"request_id": request["id"], "target": target}, headers=dept("69D")
    )
    assert r.status_code == 403
    r = await client.post(
        "/v1/holds", json={"request_id": request["id"], "target": target}, headers=dept("69M")
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    for action in ("admit", "release"):
        r = await client.post(f"/v1/holds/{hold_id}/{action}", headers=dept("69D"))
        assert r.status_code == 403
    assert (await client.get(f"/v1/holds/{hold_id}", headers=dept("69D"))).status_code == 403
    mine = await client.get("/v1/holds", headers=dept("69M"))
    assert hold_id in {h["id"] for h in mine.json()["items"]}
    theirs = await client.get("/v1/holds", headers=dept("69D"))
    assert hold_id not in {h["id"] for h in theirs.json()["items"]}
    assert (await client.get("/v1/holds?authority=69D", headers=dept("69M"))).status_code == 403
    async with pool.acquire() as conn:
        audit = await conn.fetchrow(
            "SELECT department, authority FROM audit_entries"
            " WHERE action = 'hold.create' AND object_id = $1",
            hold_id,
        )
    assert (audit["department"], audit["authority"]) == ("69", "69M")


async def test_carers_are_declared_for_by_their_own_authority(client, pool):
    carer = await make_carer(pool, department="69", commune="69266")  # Villeurbanne: 69M
    url = f"/v1/foster-carers/{carer}/availability"
    body = {"available_places": 1, "status": "active"}
    assert (await client.put(url, json=body, headers=dept("69D"))).status_code == 403
    r = await client.put(url, json=body, headers=dept("69M"))
    assert r.status_code == 200, r.text
    moi = f"/ui/api/moi?carer={carer}"
    assert (await client.get(moi, headers=dept("69D"))).status_code == 403
    assert (await client.get(moi, headers=dept("69M"))).status_code == 200
    listed = await client.get(
        "/v1/foster-carers?authority=69D", headers=bearer("authority_admin", authority="69D")
    )
    assert str(carer) not in {c["id"] for c in listed.json()["items"]}
    listed = await client.get("/v1/foster-carers", headers=dept("69M"))
    assert str(carer) in {c["id"] for c in listed.json()["items"]}
    async with pool.acquire() as conn:
        audit = await conn.fetchrow(
            "SELECT department, authority FROM audit_entries"
            " WHERE action = 'carer.declare' AND object_id = $1",
            str(carer),
        )
    assert (audit["department"], audit["authority"]) == ("69", "69M")


async def test_a_point_origin_takes_the_nearest_communes_authority(client, pool):
    # Place Bellecour, Lyon (rounded to 0.01° before storage): the Métropole.
    inside = body_from(origin={"lat": 45.7578, "lon": 4.8320})
    r = await client.post("/v1/requests", json=inside, headers=dept("69D"))
    assert r.status_code == 403
    request = await create(client, "69M", inside)
    assert (request["authority"], request["department"]) == ("69M", "69")
    assert request["origin"]["commune"] is None
    # The trigger of migration 0007 would have decided the same.
    async with pool.acquire() as conn:
        derived = await conn.fetchval(
            "SELECT c.authority FROM communes c, placement_requests r WHERE r.id = $1"
            " ORDER BY c.location <-> r.origin_location LIMIT 1",
            uuid.UUID(request["id"]),
        )
    assert derived == "69M"
    # Near Villefranche-sur-Saône: the Rhône.
    north = await create(client, "69D", body_from(origin={"lat": 45.99, "lon": 4.72}))
    assert north["authority"] == "69D"


async def test_the_authority_given_must_be_the_origins(client, pool):
    r = await client.post(
        "/v1/requests",
        json=body_from(LYON, authority="69D"),
        headers=bearer("authority_admin", authority="69M"),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "authority", r.text
    assert "69M" in r.json()["detail"]
    r = await client.post(
        "/v1/requests",
        json=body_from(LYON, authority="ZZ"),
        headers=bearer("authority_admin", authority="69M"),
    )
    assert_choices(r, 422, "authority", ALL_CODES)
    r = await client.post(
        "/v1/requests", json=body_from("69999"), headers=bearer("authority_admin", authority="69M")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "origin.commune"
    request = await create(client, "69M", body_from(LYON, authority="69M"))
    assert request["authority"] == "69M"


# --- Collectivities over two departments ----------------------------------------------------


async def test_corse_reads_the_requests_of_both_corsican_departments(client):
    ajaccio = await create(client, "20R", body_from(AJACCIO))
    bastia = await create(client, "20R", body_from(BASTIA))
    assert (ajaccio["authority"], ajaccio["department"]) == ("20R", "2A")
    assert (bastia["authority"], bastia["department"]) == ("20R", "2B")
    for request in (ajaccio, bastia):
        r = await client.get(f"/v1/requests/{request['id']}", headers=dept("20R"))
        assert r.status_code == 200 and r.json()["authority"] == "20R"
        r = await client.get(f"/v1/requests/{request['id']}", headers=dept("69M"))
        assert r.status_code == 403
    listed = await client.get("/v1/requests?limit=500", headers=dept("20R"))
    ids = {i["id"] for i in listed.json()["items"]}
    assert {ajaccio["id"], bastia["id"]} <= ids
    assert {i["authority"] for i in listed.json()["items"]} == {"20R"}
    # The former parameter: 2A and 2B each name the Collectivité de Corse, whole.
    for department in ("2A", "2B"):
        r = await client.get(f"/v1/requests?department={department}", headers=dept("20R"))
        assert r.status_code == 200 and {ajaccio["id"], bastia["id"]} <= {
            i["id"] for i in r.json()["items"]
        }


async def test_strasbourg_and_mulhouse_belong_to_alsace(client):
    strasbourg = await create(client, "6AE", body_from(STRASBOURG))
    mulhouse = await create(client, "6AE", body_from(MULHOUSE))
    assert (strasbourg["authority"], strasbourg["department"]) == ("6AE", "67")
    assert (mulhouse["authority"], mulhouse["department"]) == ("6AE", "68")
    alsace = bearer("authority_admin", authority="6AE")
    r = await client.get("/v1/requests?authority=6AE&limit=500", headers=alsace)
    assert {strasbourg["id"], mulhouse["id"]} <= {i["id"] for i in r.json()["items"]}
    r = await client.get("/v1/requests?department=67&limit=500", headers=alsace)
    assert {strasbourg["id"], mulhouse["id"]} <= {i["id"] for i in r.json()["items"]}
    r = await client.post(
        "/v1/requests", json=body_from(MULHOUSE), headers=bearer("department", department="67")
    )
    assert r.status_code == 201  # a token issued for department 67 is Alsace's


async def test_optimize_takes_an_authority(client, pool):
    r = await client.post(
        "/v1/assignments/optimize",
        json={"department": "69"},
        headers=bearer("authority_admin", authority="69M"),
    )
    assert_choices(r, 422, "department", ["69D", "69M"])
    r = await client.post(
        "/v1/assignments/optimize",
        json={"authority": "XYZ"},
        headers=bearer("authority_admin", authority="69M"),
    )
    assert_choices(r, 422, "authority", ALL_CODES)
    r = await client.post("/v1/assignments/optimize", json={}, headers=bearer("operator"))
    assert r.status_code == 403  # the platform operator plans no child's placement
    request = await create(client, "20R", body_from(AJACCIO))
    r = await client.post(
        "/v1/assignments/optimize", json={"authority": "20R"}, headers=dept("20R")
    )
    assert r.status_code == 200, r.text
    assert r.json()["requests"] >= 1
    r = await client.post(
        "/v1/assignments/optimize",
        json={"department": "2B", "request_ids": [request["id"]]},
        headers=dept("20R"),
    )
    assert r.status_code == 200 and r.json()["requests"] == 1
    r = await client.post(
        "/v1/assignments/optimize", json={"authority": "20R"}, headers=dept("69M")
    )
    assert r.status_code == 403


# --- Tokens -------------------------------------------------------------------------------


async def test_a_legacy_department_token_of_one_authority_is_accepted(client):
    headers = legacy_token(department="13")
    request = await create_with(client, headers, body_from(MARSEILLE))
    assert request["authority"] == "13"
    r = await client.get("/v1/requests?limit=500", headers=headers)
    assert r.status_code == 200 and request["id"] in {i["id"] for i in r.json()["items"]}
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept("13"))
    assert r.status_code == 200
    corse = await create_with(client, legacy_token(department="2A"), body_from(BASTIA))
    assert corse["authority"] == "20R"


async def create_with(client: httpx.AsyncClient, headers: dict, body: dict) -> dict:
    r = await client.post("/v1/requests", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_legacy_token_of_department_69_is_refused_with_the_choices(client):
    r = await client.get("/v1/requests", headers=legacy_token(department="69"))
    assert_choices(r, 401, "department", ["69D", "69M"])
    assert r.headers["www-authenticate"] == "Bearer"
    detail = r.json()["detail"]
    assert "69M" in detail and "Métropole de Lyon" in detail
    assert "69D" in detail and "Département du Rhône" in detail
    for claims in ({"authority": "99X"}, {"department": "99"}, {}):
        r = await client.get("/v1/requests", headers=legacy_token(**claims))
        assert r.status_code == 401, claims


@pytest.mark.pure
def test_tokens_carry_the_authority():
    settings = get_settings()
    claims = jwt.decode(
        issue_token("department", authority="69M"), options={"verify_signature": False}
    )
    assert claims["authority"] == "69M" and "department" not in claims
    for department, authority in (("13", "13"), ("2A", "20R"), ("2B", "20R"), ("67", "6AE")):
        token = issue_token("department", department=department)
        assert jwt.decode(token, options={"verify_signature": False})["authority"] == authority
        principal = decode_token(token, settings)
        assert principal.authority == authority
    with pytest.raises(ValueError, match="69M"):
        issue_token("department", department="69")
    with pytest.raises(ValueError, match="authority"):
        issue_token("department", authority="69")


@pytest.mark.pure
def test_the_token_command_takes_an_authority():
    from api.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["token", "--role", "department", "--authority", "69M"])
    assert out.exit_code == 0, out.output
    token = out.stdout.strip().splitlines()[-1]
    assert jwt.decode(token, options={"verify_signature": False})["authority"] == "69M"
    out = runner.invoke(app, ["token", "--role", "department", "--department", "67"])
    assert out.exit_code == 0, out.output
    token = out.stdout.strip().splitlines()[-1]
    assert jwt.decode(token, options={"verify_signature": False})["authority"] == "6AE"
    out = runner.invoke(app, ["token", "--role", "department", "--department", "69"])
    assert out.exit_code == 2


# --- Parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/requests",
        "/v1/requests/unexecuted",
        "/v1/holds",
        "/v1/audit",
        "/v1/foster-carers",
    ],
)
async def test_department_69_as_a_parameter_is_422_with_the_choices(client, path):
    for headers in (bearer("authority_admin", authority="69M"), dept("69M")):
        r = await client.get(f"{path}?department=69", headers=headers)
        assert_choices(r, 422, "department", ["69D", "69M"])
        assert "69M" in r.json()["detail"] and "69D" in r.json()["detail"]
        r = await client.get(f"{path}?authority=69Q", headers=headers)
        assert_choices(r, 422, "authority", ALL_CODES)
        assert len(ALL_CODES) == 100
    r = await client.get(
        f"{path}?authority=69M&department=13", headers=bearer("authority_admin", authority="69M")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department"


async def test_the_unexecuted_list_of_an_authority(client):
    old_day = (local_today("2A") - timedelta(days=45)).isoformat()
    old = await create(
        client, "20R", body_from(AJACCIO, measure={"kind": "judicial", "decided_on": old_day})
    )
    r = await client.get("/v1/requests/unexecuted", headers=dept("20R"))
    assert r.status_code == 200 and old["id"] in {i["id"] for i in r.json()["items"]}
    r = await client.get("/v1/requests/unexecuted", headers=dept("69M"))
    assert old["id"] not in {i["id"] for i in r.json()["items"]}


async def test_every_authority_is_listed(client):
    r = await client.get("/v1/authorities", headers=bearer("structure", finess="690000018"))
    assert r.status_code == 200, r.text
    by_code = {a["code"]: a for a in r.json()}
    assert len(by_code) == 100 and list(by_code) == ALL_CODES
    assert by_code["69M"] == {
        "code": "69M",
        "name": "Métropole de Lyon",
        "kind": "metropole",
        "departments": ["69"],
    }
    assert by_code["20R"]["departments"] == ["2A", "2B"]
    assert by_code["6AE"]["departments"] == ["67", "68"]
    assert (await client.get("/v1/authorities")).status_code == 401


async def test_structures_are_listed_by_authority(client, pool):
    """The Métropole de Lyon's dashboard lists its establishments, not the Rhône's; the
    department filter stays geographic (69 lists both)."""
    lyon = await make_structure(pool, department="69", commune=LYON)
    rhone = await make_structure(pool, department="69", commune=VILLEFRANCHE)
    headers = bearer("national")

    async def finess(query: str) -> set[str]:
        r = await client.get(f"/v1/structures?{query}&limit=500", headers=headers)
        assert r.status_code == 200, r.text
        return {s["finess"] for s in r.json()["items"]}

    assert lyon["finess"] in await finess("authority=69M")
    assert rhone["finess"] not in await finess("authority=69M")
    assert rhone["finess"] in await finess("authority=69D")
    assert lyon["finess"] not in await finess("authority=69D")
    assert {lyon["finess"], rhone["finess"]} <= await finess("department=69")
    assert lyon["finess"] in await finess("department=69&authority=69M")
    r = await client.get("/v1/structures?authority=69X", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "authority"
    r = await client.get("/v1/structures?authority=69M&department=38", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department"


async def test_structures_and_units_audit_their_authority(client, pool):
    s = await make_structure(pool, department="69", commune=VILLEFRANCHE)
    r = await client.put(
        f"/v1/units/{s['unit_ids'][0]}/capacity",
        json={"temporality": "current", "installed": 10, "available": 4},
        headers={**bearer("structure", finess=s["finess"]), **idem()},
    )
    assert r.status_code == 200, r.text
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT department, authority FROM audit_entries"
            " WHERE action = 'capacity.declare' AND object_id = $1",
            str(s["unit_ids"][0]),
        )
    assert (row["department"], row["authority"]) == ("69", "69D")


# --- The one place that decides (pure) ----------------------------------------------------


@pytest.mark.pure
def test_resolve_authority():
    resolve = authorities.resolve_authority
    assert resolve(None, None) is None
    assert resolve("69M", None) == "69M"
    assert resolve(None, "13") == "13"
    assert resolve(None, "2B") == "20R"
    assert resolve(None, "68") == "6AE"
    assert resolve("20R", "2A") == "20R"
    with pytest.raises(Invalid) as ambiguous:
        resolve(None, "69")
    assert ambiguous.value.errors == [
        {
            "field": "department",
            "message": ambiguous.value.errors[0]["message"],
            "choices": ["69D", "69M"],
        }
    ]
    message = ambiguous.value.errors[0]["message"]
    assert message.index("69M (Métropole de Lyon)") < message.index("69D (Département du Rhône)")
    with pytest.raises(Invalid) as unknown:
        resolve("99", None, "authority")
    assert unknown.value.errors[0]["field"] == "authority"
    assert unknown.value.errors[0]["choices"] == ALL_CODES
    with pytest.raises(Invalid) as mismatch:
        resolve("69M", "13")
    assert mismatch.value.errors[0]["field"] == "department"
    assert authorities.single_department("69D") == "69"
    assert authorities.single_department("6AE") is None
