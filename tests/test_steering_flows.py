"""Placements outside the authority (#18): the origin → host matrix, exact for the
authority's own services, with statistical secrecy nationally. Scenario: La Réunion (974)
places children in Alsace (6AE) and Corse (20R), where no other test places La Réunion's
children, and one at home."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.requests.service import local_today
from tests.support.factories import bearer, hold, new_unit, request_body

pytestmark = pytest.mark.usefixtures("pool")

ORIGIN = "974"


def reunion() -> dict[str, str]:
    return bearer("department", authority=ORIGIN)


async def place(client: httpx.AsyncClient, unit: dict[str, Any], n_children: int = 1) -> str:
    body = request_body(
        n_children,
        department=ORIGIN,
        origin={"commune": "97411"},
        reference=f"R-{uuid.uuid4().hex[:8]}",
        measure={
            "kind": "judicial",
            "decided_on": (local_today(ORIGIN) - timedelta(days=10)).isoformat(),
        },
    )
    r = await client.post("/v1/requests", json=body, headers=reunion())
    assert r.status_code == 201, r.text
    h = await hold(client, r.json(), "unit", unit["id"])
    assert h.status_code == 201, h.text
    r = await client.post(f"/v1/holds/{h.json()['id']}/admit", headers=reunion())
    assert r.status_code == 200, r.text
    return str(h.json()["request_id"])


async def test_flows_between_authorities_with_secrecy(client: httpx.AsyncClient, pool) -> None:
    alsace = await new_unit(client, pool, available=3, department="67", commune="67482")
    corse = await new_unit(client, pool, available=8, department="2A", commune="2A004")
    home = await new_unit(client, pool, available=2, department="974", commune="97411")
    placed = [await place(client, alsace) for _ in range(3)]
    placed.append(await place(client, corse, n_children=2))  # a sibling group: two children
    placed += [await place(client, corse) for _ in range(4)]
    placed.append(await place(client, home))

    # The authority's own row and column, exact (hand-computed: 3 + 6 outside, 1 inside).
    r = await client.get(f"/v1/stats/flows/{ORIGIN}", headers=reunion())
    assert r.status_code == 200, r.text
    mine = r.json()
    cells = {(c["origin"], c["host"]): c["children"] for c in mine["cells"]}
    assert cells == {(ORIGIN, "6AE"): 3, (ORIGIN, "20R"): 6}
    assert mine["origins"] == [{"authority": ORIGIN, "outside": 9, "inside": 1}]
    assert mine["hosts"] == [{"authority": ORIGIN, "from_outside": 0}]
    assert mine["window_days"] == 365 and mine["extracted_on"] == local_today(None).isoformat()
    r = await client.get(f"/v1/stats/flows/{ORIGIN}", headers=bearer("department", authority="13"))
    assert r.status_code == 403
    r = await client.get("/v1/stats/flows/ZZ", headers=reunion())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "authority"
    r = await client.get("/v1/stats/flows?window_days=3", headers=bearer("national"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "window_days"

    # The national window ends yesterday: today's admissions are not in it yet.
    r = await client.get("/v1/stats/flows", headers=bearer("national"))
    assert r.status_code == 200, r.text
    assert r.json()["window_last_day"] == (local_today(None) - timedelta(days=1)).isoformat()
    assert not [c for c in r.json()["cells"] if c["origin"] == ORIGIN]
    # The day closes: the same admissions, dated yesterday.
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE request_events SET occurred_at = occurred_at - interval '1 day'"
            " WHERE request_id = ANY($1::uuid[])",
            placed,
        )

    # Nationally: 3 children in Alsace is "< 5"; the row of 974 then hides a second cell
    # (secondary suppression: 6 in Corse, unless another test left a column whose cell in
    # this row is a smaller, unknown zero), so 3 is not 9 − 6.
    r = await client.get("/v1/stats/flows", headers=bearer("national"))
    assert r.status_code == 200, r.text
    page = r.json()
    cells = {(c["origin"], c["host"]): c["children"] for c in page["cells"]}
    assert cells[(ORIGIN, "6AE")] is None
    assert cells[(ORIGIN, "20R")] in (None, 6)
    assert sum(v is None for (o, _), v in cells.items() if o == ORIGIN) >= 2
    origins = {o["authority"]: o for o in page["origins"]}
    hosts = {h["authority"]: h for h in page["hosts"]}
    assert origins[ORIGIN]["outside"] == 9
    assert all(o != h for o, h in cells), "placements inside are not cells of the matrix"
    # No line of the extended table (cells and margin) hides exactly one cell.
    codes = list(origins)
    for code in codes:
        row = [cells.get((code, h), 0) is None for h in codes if h != code]
        column = [cells.get((o, code), 0) is None for o in codes if o != code]
        assert sum(row) + (origins[code]["outside"] is None) != 1, code
        assert sum(column) + (hosts[code]["from_outside"] is None) != 1, code
    assert "reference" not in r.text
