"""Issue #14: every read of a child's or an authority's data leaves an entry — searches,
carer lists, reads of the audit trail — under the authority whose data it is, and that
authority's trail (``GET /v1/audit``) shows it whoever the reader was (its administrator
included).
The feed subscriptions are tested with the feed servers (tests/test_feeds.py)."""

import uuid
from typing import Any

import asyncpg
import httpx

from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    hold,
    make_carer,
    new_request,
    new_unit,
)


async def entries(pool: asyncpg.Pool, action: str, actor: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT actor, role, action, object_type, object_id, department, authority, detail"
        " FROM audit_entries WHERE action = $1 AND actor = $2 ORDER BY id",
        action,
        actor,
    )


def search_body(**origin: Any) -> dict[str, Any]:
    return {
        "children": [{"age": 8, "sex": "F"}, {"age": 10, "sex": "M"}],
        "origin": origin or {"commune": "69123"},
        "care_mode": "durable",
        "limit": 5,
    }


async def trail(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/v1/audit?limit=500", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_search_is_audited_with_a_summary_of_the_need(client, pool):
    actor = f"agent-{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/v1/search", json=search_body(), headers=bearer("department", authority="69M", sub=actor)
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    [row] = await entries(pool, "search.run", actor)
    assert (row["role"], row["object_type"], row["department"], row["authority"]) == (
        "department",
        "search",
        "69",
        "69M",
    )
    assert row["detail"] == {
        "children": 2,
        "timing": "durable",
        "public": "mineur",
        "formula": "enfant",
        "urgency": "days",
        "origin_commune": "69123",
        "origin_department": "69",
        "tried": answer["tried"],
        "proposals": len(answer["proposals"]),
        "unmatched_children": len(answer["unmatched_children"]),
    }
    # Nothing identifying: no ages, no offers.
    assert "age" not in str(row["detail"]) and "target" not in str(row["detail"])


async def test_an_authority_admin_search_from_a_point_is_filed_under_its_authority(client, pool):
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    body = search_body(lat=45.767891, lon=4.834567)
    headers = bearer("authority_admin", authority="69M", sub=actor)
    r = await client.post("/v1/search", json=body, headers=headers)
    assert r.status_code == 200, r.text
    [row] = await entries(pool, "search.run", actor)
    assert row["authority"] == "69M" and row["department"] == "69"
    assert row["detail"]["origin_point"] == [45.77, 4.83]
    assert "origin_commune" not in row["detail"]
    # The Métropole's placement service sees its administrator's search in its trail.
    assert any(
        i["action"] == "search.run" and i["actor"] == actor for i in await trail(client, dept())
    )


async def test_refused_search_writes_nothing(client, pool):
    actor = f"agent-{uuid.uuid4().hex[:8]}"
    headers = bearer("department", authority="69M", sub=actor)
    r = await client.post("/v1/search", json=search_body(commune="99999"), headers=headers)
    assert r.status_code == 422
    assert await entries(pool, "search.run", actor) == []


async def test_carer_list_is_audited_with_the_ids_returned(client, pool):
    carer = await make_carer(pool, department="69", commune="69123")
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    r = await client.get(
        f"/v1/foster-carers?authority={AUTHORITY}&limit=5000",
        headers=bearer("authority_admin", authority=AUTHORITY, sub=actor),
    )
    assert r.status_code == 200, r.text
    ids = [i["id"] for i in r.json()["items"]]
    assert str(carer) in ids
    [row] = await entries(pool, "carer.list", actor)
    assert (row["object_type"], row["object_id"], row["authority"]) == (
        "foster_carer",
        f"list:{AUTHORITY}",
        AUTHORITY,
    )
    assert row["detail"] == {"limit": 5000, "offset": 0, "carer_ids": ids}
    assert any(
        i["action"] == "carer.list" and i["actor"] == actor for i in await trail(client, dept())
    )
    # Another authority's trail does not show it.
    assert not any(i["actor"] == actor for i in await trail(client, dept("01")))


async def test_an_authority_admin_read_of_a_request_is_in_the_authority_trail(client, pool):
    request = await new_request(client)
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    r = await client.get(
        f"/v1/requests/{request['id']}",
        headers=bearer("authority_admin", authority=AUTHORITY, sub=actor),
    )
    assert r.status_code == 200
    [row] = await entries(pool, "request.read", actor)
    assert row["authority"] == AUTHORITY
    items = await trail(client, dept())
    read = [i for i in items if i["action"] == "request.read" and i["actor"] == actor]
    assert len(read) == 1 and read[0]["role"] == "authority_admin"
    assert read[0]["object_id"] == request["id"] and read[0]["authority"] == AUTHORITY
    assert read[0]["actor_authority"] == AUTHORITY and read[0]["function"] is None
    # And by the request's id.
    r = await client.get(f"/v1/audit?object_id={request['id']}", headers=dept())
    assert actor in {i["actor"] for i in r.json()["items"]}
    # Another authority's administrator, and the platform operator, read none of it.
    for headers in (bearer("authority_admin", authority="13"), bearer("operator")):
        r = await client.get(f"/v1/requests/{request['id']}", headers=headers)
        assert r.status_code == 403


async def test_reads_of_the_audit_trail_are_audited(client, pool):
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    admin = bearer("authority_admin", authority=AUTHORITY, sub=actor)
    r = await client.get(f"/v1/audit?authority={AUTHORITY}&limit=7", headers=admin)
    assert r.status_code == 200
    [row] = await entries(pool, "audit.read", actor)
    assert (row["object_type"], row["object_id"], row["department"], row["authority"]) == (
        "audit",
        f"list:{AUTHORITY}",
        "69",
        AUTHORITY,
    )
    assert row["detail"] == {"object_id": None, "limit": 7, "offset": 0}
    # The authority sees that its trail was read, and by whom.
    assert any(
        i["action"] == "audit.read" and i["actor"] == actor for i in await trail(client, dept())
    )
    # Without a filter an administrator reads its own authority's trail, filed under it.
    r = await client.get("/v1/audit?limit=1", headers=admin)
    assert r.status_code == 200
    rows = await entries(pool, "audit.read", actor)
    assert len(rows) == 2 and rows[1]["authority"] == AUTHORITY
    # Nobody reads every authority's trail: not the platform operator, not another authority.
    assert (await client.get("/v1/audit?limit=1", headers=bearer("operator"))).status_code == 403
    r = await client.get("/v1/audit?authority=13", headers=admin)
    assert r.status_code == 403


async def test_nobody_lists_across_authorities(client, pool):
    """The former admin listed every authority's requests and holds; an authority
    administrator lists its own, the platform operator none."""
    ours = await new_request(client)
    corse = await new_request(client, authority="20R", origin={"commune": "2A004"})
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    admin = bearer("authority_admin", authority=AUTHORITY, sub=actor)
    r = await client.get("/v1/requests?limit=500", headers=admin)
    assert r.status_code == 200, r.text
    ids = {i["id"] for i in r.json()["items"]}
    assert ours["id"] in ids and corse["id"] not in ids
    [row] = await entries(pool, "request.list", actor)
    assert row["authority"] == AUTHORITY
    assert (await client.get("/v1/requests?authority=20R", headers=admin)).status_code == 403
    for path in ("/v1/requests", "/v1/holds?status=held", "/v1/requests/unexecuted"):
        assert (await client.get(path, headers=bearer("operator"))).status_code == 403, path


async def test_readers_outside_shows_who_read_the_authoritys_data_from_outside(client, pool):
    """ "Who read our children's data": ``readers=outside`` keeps the reads by whoever did not
    act for the authority (here an establishment reading the hold placed on its unit) and
    leaves out the authority's own placement service and administrator."""
    request = await new_request(client)
    unit = await new_unit(client, pool)
    r = await hold(client, request, "unit", unit["id"])
    assert r.status_code == 201, r.text
    tag = uuid.uuid4().hex[:8]
    own, manager, establishment = f"agent-{tag}", f"adm-{tag}", f"directeur-{tag}"
    path = f"/v1/requests/{request['id']}"
    for headers in (
        bearer("department", authority=AUTHORITY, sub=own),
        bearer("authority_admin", authority=AUTHORITY, sub=manager),
    ):
        assert (await client.get(path, headers=headers)).status_code == 200
    headers = bearer("structure", finess=unit["finess"], sub=establishment)
    assert (await client.get("/v1/holds", headers=headers)).status_code == 200
    r = await client.get("/v1/audit?readers=outside&limit=500", headers=dept())
    assert r.status_code == 200, r.text
    actors = {i["actor"] for i in r.json()["items"]}
    assert establishment in actors
    assert own not in actors and manager not in actors
    everyone = await client.get(f"/v1/audit?object_id={request['id']}", headers=dept())
    assert {own, manager} <= {i["actor"] for i in everyone.json()["items"]}
    # Another authority's service cannot read it; a bad value names the parameter.
    r = await client.get(f"/v1/audit?authority={AUTHORITY}&readers=outside", headers=dept("01"))
    assert r.status_code == 403
    r = await client.get("/v1/audit?readers=nobody", headers=dept())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "readers"
