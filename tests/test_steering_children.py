"""Children, not requests (#18): coded outcomes, waiting situations, the child's key, and the
indicators on a small hand-computed scenario in authority 01 (Bourg-en-Bresse), where no
other test places requests."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.requests.children import child_key, normalise
from api.requests.service import local_today
from tests.support.factories import bearer, hold, idem, new_unit, request_body

pytestmark = pytest.mark.usefixtures("pool")

A = "01"
"""The scenario's authority; the other tests of this file work in ``B`` (Marseille), so that
the scenario's figures are its own."""
B = "13"
COMMUNES = {A: "01053", B: "13055"}


def dept01(authority: str = A) -> dict[str, str]:
    return bearer("department", authority=authority)


async def ask(
    client: httpx.AsyncClient, reference: str, days_ago: int, authority: str = A, **over: Any
) -> Any:
    body = request_body(
        over.pop("n_children", 1),
        department=authority,
        origin={"commune": COMMUNES[authority]},
        reference=reference,
        measure={
            "kind": "judicial",
            "decided_on": (local_today(A) - timedelta(days=days_ago)).isoformat(),
        },
        **over,
    )
    r = await client.post("/v1/requests", json=body, headers=dept01(authority))
    assert r.status_code == 201, r.text
    return r.json()


async def placed(client: httpx.AsyncClient, unit: dict[str, Any], request: Any) -> None:
    h = await hold(client, request, "unit", unit["id"])
    assert h.status_code == 201, h.text
    r = await client.post(f"/v1/holds/{h.json()['id']}/admit", headers=dept01(request["authority"]))
    assert r.status_code == 200, r.text


def test_the_key_is_keyed_and_normalised() -> None:
    secret = b"s" * 32
    assert normalise(" ase01-7 ") == "ASE01-7"
    assert child_key(secret, A, "ase01-7") == child_key(secret, A, "ASE01-7 ")
    assert child_key(secret, A, "ASE01-7") != child_key(secret, "69M", "ASE01-7")
    assert child_key(secret, A, "ASE01-7") != child_key(b"t" * 32, A, "ASE01-7")
    assert len(child_key(secret, A, "ASE01-7")) == 32 and "ASE01" not in child_key(
        secret, A, "ASE01-7"
    )


async def test_situation_is_recorded_with_if_match(client: httpx.AsyncClient, pool) -> None:
    request = await ask(client, f"S-{uuid.uuid4().hex[:8]}", 3, B)
    assert request["situation"] == {"code": "inconnu", "since": local_today(B).isoformat()}
    path = f"/v1/requests/{request['id']}/situation"
    body = {"code": "hopital"}
    r = await client.put(path, json=body, headers=dept01(B))
    assert r.status_code == 428 and r.json()["errors"][0]["field"] == "If-Match"
    r = await client.put(path, json=body, headers={**dept01(B), "If-Match": '"99"'})
    assert r.status_code == 409
    r = await client.put(path, json={"code": "hotel"}, headers={**dept01(B), "If-Match": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code"
    tomorrow = (local_today(B) + timedelta(days=1)).isoformat()
    r = await client.put(
        path, json={"code": "hopital", "since": tomorrow}, headers={**dept01(B), "If-Match": "1"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"
    r = await client.put(
        path, json=body, headers={**bearer("department", authority="69M"), "If-Match": "1"}
    )
    assert r.status_code == 403
    key = idem()
    r = await client.put(path, json=body, headers={**dept01(B), "If-Match": '"1"', **key})
    assert r.status_code == 200, r.text
    assert r.json()["situation"]["code"] == "hopital" and r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    again = await client.put(path, json=body, headers={**dept01(B), "If-Match": '"1"', **key})
    assert again.headers.get("idempotent-replayed") == "true"
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT situation FROM request_situations WHERE request_id = $1 ORDER BY id",
            uuid.UUID(request["id"]),
        )
        audit = await conn.fetchval(
            "SELECT count(*) FROM audit_entries WHERE action = 'request.situation'"
            " AND object_id = $1",
            request["id"],
        )
        event = await conn.fetchrow(
            "SELECT data, national_data FROM outbox_events WHERE type = 'request.updated'"
            " AND data->>'id' = $1 ORDER BY id DESC LIMIT 1",
            request["id"],
        )
    assert [r["situation"] for r in rows] == ["inconnu", "hopital"]
    assert audit == 1
    assert event["data"]["event"] == "situation" and event["data"]["status"] == "waiting"
    assert event["national_data"] == {}  # nothing of children on the national feed (#18)


async def test_cancel_and_exit_take_coded_reasons(client: httpx.AsyncClient, pool) -> None:
    request = await ask(client, f"X-{uuid.uuid4().hex[:8]}", 3, B)
    cancel = f"/v1/requests/{request['id']}/cancel"
    r = await client.post(cancel, json={}, headers=dept01(B))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason_code"
    r = await client.post(cancel, json={"reason": "x" * 201}, headers=dept01(B))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = await client.post(cancel, json={"reason_code": "doublon"}, headers=dept01(B))
    assert r.status_code == 200, r.text
    history = await client.get(f"/v1/requests/{request['id']}/history", headers=dept01(B))
    assert history.json()["items"][-1]["reason_code"] == "doublon"

    unit = await new_unit(client, pool, department=B, commune="13055")
    request = await ask(client, f"X-{uuid.uuid4().hex[:8]}", 3, B)
    await placed(client, unit, request)
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept01(B))
    placement = r.json()["hold"]["id"]
    r = await client.post(
        f"/v1/placements/{placement}/exit", json={"reason_code": "majorite"}, headers=dept01(B)
    )
    assert r.status_code == 200 and r.json()["reason_code"] == "majorite", r.text
    # Places's own release codes are not a client's.
    r = await client.post(
        f"/v1/holds/{placement}/release",
        json={"reason_code": "agrement_retire"},
        headers=dept01(B),
    )
    assert r.status_code == 422


async def test_indicators_of_children_on_a_hand_computed_scenario(
    client: httpx.AsyncClient, pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    unit = await new_unit(client, pool, available=6, department=A, commune="01053")
    # Child A: asked 40 days ago, cancelled, asked again 20 days ago under the same file
    # (written in lower case): one child, waiting in hospital.
    first = await ask(client, f"A-{tag}", 40, situation={"code": "hopital"})
    r = await client.post(
        f"/v1/requests/{first['id']}/cancel",
        json={"reason_code": "autre", "reason": "nouvelle ordonnance"},
        headers=dept01(),
    )
    assert r.status_code == 200
    await ask(client, f"a-{tag}", 20, situation={"code": "hopital"})
    # Siblings B (2 children): 100 days, in an emergency unit.
    await ask(client, f"B-{tag}", 100, n_children=2, situation={"code": "accueil_urgence"})
    # C, D, E admitted today, 16, 5 and 30 days after their decisions; D refused once first.
    await placed(client, unit, await ask(client, f"C-{tag}", 16))
    d = await ask(client, f"D-{tag}", 5)
    h = await hold(client, d, "unit", unit["id"])
    r = await client.post(
        f"/v1/holds/{h.json()['id']}/refuse",
        json={"reason_code": "distance"},
        headers=unit["headers"],
    )
    assert r.status_code == 200 and r.json()["reason_code"] == "distance", r.text
    await placed(client, unit, d)
    await placed(client, unit, await ask(client, f"E-{tag}", 30))

    r = await client.get(f"/v1/stats/children/{A}", headers=dept01())
    assert r.status_code == 200, r.text
    page = r.json()
    mine = page["items"][0]
    assert mine["children_waiting"] == 3  # A once (not twice), B's two
    assert mine["situations"]["hopital"] == 1 and mine["situations"]["accueil_urgence"] == 2
    assert sum(mine["situations"].values()) == 3
    assert mine["not_executed"] == {"15": 3, "30": 2, "90": 2}
    delay = mine["execution_delay_days"]
    assert delay["admissions"] == 3 and delay["median"] == 16
    assert delay["p90"] == pytest.approx(27.2)  # 16 + 0.8 × (30 − 16)
    assert mine["refusals_by_reason"]["distance"] == 1
    assert mine["refusals_by_category"] == {"177": 1}  # a MECS (the factory's category)
    assert page["extracted_on"] == local_today(None).isoformat()
    # Another authority's services do not read 01's exact figures.
    r = await client.get(f"/v1/stats/children/{A}", headers=bearer("department", authority="69M"))
    assert r.status_code == 403

    # The national view: 3 children is "< 5", and its column hides another cell too.
    r = await client.get("/v1/stats/children", headers=bearer("national"))
    assert r.status_code == 200, r.text
    items = {i["authority"]: i for i in r.json()["items"]}
    ours = items[A]
    assert ours["children_waiting"] is None and "children_waiting" in ours["suppressed"]
    assert ours["situations"]["hopital"] is None and ours["situations"]["accueil_urgence"] is None
    hidden = [i for i in items.values() if i["children_waiting"] is None]
    assert len(hidden) >= 2, "a single hidden cell would be the national total minus the rest"
    for s in ("hopital", "accueil_urgence"):
        assert sum(i["situations"][s] is None for i in items.values()) != 1
    assert "reference" not in r.text and f"A-{tag}" not in r.text
