"""GET /v1/holds: each side sees the holds it has to act on, and nothing else; audited."""

from tests.support.factories import bearer, dept, hold, new_carer, new_request, new_unit


async def test_each_side_sees_its_own_holds(client, pool):
    unit = await new_unit(client, pool, available=2)
    other = await new_unit(client, pool, available=2)
    carer = await new_carer(client, pool)
    on_unit = (await hold(client, await new_request(client), "unit", unit["id"])).json()
    on_other = (await hold(client, await new_request(client), "unit", other["id"])).json()
    on_carer = (await hold(client, await new_request(client), "carer", carer["id"])).json()

    seen = await client.get("/v1/holds", headers=unit["headers"])
    assert seen.status_code == 200, seen.text
    ids = {h["id"] for h in seen.json()["items"]}
    assert on_unit["id"] in ids and on_other["id"] not in ids and on_carer["id"] not in ids

    ids = {
        h["id"] for h in (await client.get("/v1/holds", headers=carer["headers"])).json()["items"]
    }
    assert ids == {on_carer["id"]}

    ids = {h["id"] for h in (await client.get("/v1/holds", headers=dept())).json()["items"]}
    assert {on_unit["id"], on_other["id"], on_carer["id"]} <= ids
    assert (await client.get("/v1/holds?department=01", headers=dept())).status_code == 403
    assert (await client.get("/v1/holds", headers=bearer("national"))).status_code == 403

    # The establishment can now refuse the hold it sees; it leaves its "held" list.
    r = await client.post(
        f"/v1/holds/{on_unit['id']}/refuse", json={"reason": "complet"}, headers=unit["headers"]
    )
    assert r.status_code == 200, r.text
    ids = {
        h["id"] for h in (await client.get("/v1/holds", headers=unit["headers"])).json()["items"]
    }
    assert on_unit["id"] not in ids
    refused = await client.get("/v1/holds?status=refused", headers=unit["headers"])
    assert on_unit["id"] in {h["id"] for h in refused.json()["items"]}

    async with pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_entries WHERE action = 'hold.list'"
            " AND detail->'hold_ids' ? $1",
            on_carer["id"],
        )
    assert audited >= 2
