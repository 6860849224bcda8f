"""One truth for capacity: the snapshot, the holds and the declarations never disagree.

The rule is in ``api.capacity.moves``; these tests drive it through the API, including random
sequences of holds, admissions, releases, refusals, expiries, exits and re-declarations.
"""

import asyncio
import random
import uuid
from typing import Any

from api.holds.expiry import expire_due
from tests.support.checks import assert_one_truth, fingerprint, snapshot
from tests.support.factories import dept, hold, idem, new_carer, new_request, new_unit

COUNTS = ("installed", "occupied", "reserved", "closed", "available", "additional")


async def declare(client, unit: dict[str, Any], **counts: int) -> Any:
    return await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers={**unit["headers"], **idem()},
        json={"temporality": "current", **counts},
    )


async def test_redeclaration_cannot_drop_reserved_below_holds(client, pool):
    unit = await new_unit(client, pool, available=4, installed=10)
    siblings = await new_request(client, n_children=2)
    h = (await hold(client, siblings, "unit", unit["id"])).json()
    assert (await snapshot(pool, unit["id"]))["reserved"] == 2

    before = await fingerprint(pool, [siblings["id"]], unit["id"])
    r = await declare(client, unit, reserved=1, available=3)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "reserved"
    assert await fingerprint(pool, [siblings["id"]], unit["id"]) == before

    # Omitting ``reserved`` keeps it: the establishment's other counts are its word.
    r = await declare(client, unit, occupied=5, available=3)
    assert r.status_code == 200 and r.json()["reserved"] == 2
    # Its own reservations come on top of Places' holds.
    r = await declare(client, unit, occupied=5, reserved=3, available=2)
    assert r.status_code == 200
    await assert_one_truth(pool, unit["id"], own_reserved=1)
    # Forecast temporalities are not touched by holds: no floor there.
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers={**unit["headers"], **idem()},
        json={"temporality": "h24", "reserved": 0, "occupied": 5, "available": 5},
    )
    assert r.status_code == 200

    r = await client.post(f"/v1/holds/{h['id']}/release", headers=dept())
    assert r.status_code == 200
    snap = await snapshot(pool, unit["id"])
    assert (snap["reserved"], snap["available"], snap["occupied"]) == (1, 4, 5)
    await assert_one_truth(pool, unit["id"], own_reserved=1)
    assert (await declare(client, unit, reserved=0, available=5)).status_code == 200


async def test_exit_after_the_establishment_lowered_occupied(client, pool):
    """The establishment declared the child gone before the department recorded the exit:
    the exit frees only what is still occupied (the place is already available)."""
    unit = await new_unit(client, pool, available=1, installed=3)  # occupied 2
    request = await new_request(client)
    h = (await hold(client, request, "unit", unit["id"])).json()
    assert (await client.post(f"/v1/holds/{h['id']}/admit", headers=dept())).status_code == 200
    assert (await declare(client, unit, occupied=0, available=3)).status_code == 200
    r = await client.post(f"/v1/placements/{h['id']}/exit", json={"reason": "x"}, headers=dept())
    assert r.status_code == 200
    snap = await snapshot(pool, unit["id"])
    assert (snap["occupied"], snap["available"]) == (0, 3)
    await assert_one_truth(pool, unit["id"])


async def test_random_sequences_never_disagree(client, pool):
    rng = random.Random(20261125)
    installed = 12
    unit = await new_unit(client, pool, available=8, installed=installed)  # occupied 4
    model = {"occupied": 4, "reserved": 0, "available": 8}
    held: dict[str, int] = {}  # hold id → places
    admitted: dict[str, int] = {}
    outcomes: dict[str, int] = {}

    for _ in range(150):
        op = rng.choice(["hold", "hold", "admit", "release", "refuse", "expire", "exit", "declare"])
        if op == "hold":
            n = rng.randint(1, 3)
            request = await new_request(client, n_children=n)
            r = await hold(client, request, "unit", unit["id"])
            if model["available"] >= n:
                assert r.status_code == 201, r.text
                held[r.json()["id"]] = n
                model["available"] -= n
                model["reserved"] += n
            else:
                assert r.status_code == 409, r.text
        elif op in ("admit", "release", "refuse", "expire") and held:
            hold_id = rng.choice(sorted(held))
            n = held.pop(hold_id)
            if op == "admit":
                r = await client.post(f"/v1/holds/{hold_id}/admit", headers=dept())
                assert r.status_code == 200, r.text
                admitted[hold_id] = n
                model["occupied"] += n
            else:
                if op == "release":
                    r = await client.post(f"/v1/holds/{hold_id}/release", headers=dept())
                    assert r.status_code == 200, r.text
                elif op == "refuse":
                    r = await client.post(
                        f"/v1/holds/{hold_id}/refuse",
                        json={"reason": "complet"},
                        headers=unit["headers"],
                    )
                    assert r.status_code == 200, r.text
                else:
                    async with pool.acquire() as conn:
                        await conn.execute(
                            "UPDATE holds SET expires_at = now() - interval '1 second'"
                            " WHERE id = $1",
                            uuid.UUID(hold_id),
                        )
                    await expire_due(pool)  # (or the background pass got there first)
                    async with pool.acquire() as conn:
                        status = await conn.fetchval(
                            "SELECT status FROM holds WHERE id = $1", uuid.UUID(hold_id)
                        )
                    assert status == "expired"
                model["available"] += n
            model["reserved"] -= n
        elif op == "exit" and admitted:
            hold_id = rng.choice(sorted(admitted))
            n = admitted.pop(hold_id)
            r = await client.post(
                f"/v1/placements/{hold_id}/exit", json={"reason": "fin"}, headers=dept()
            )
            assert r.status_code == 200, r.text
            freed = min(n, model["occupied"])
            model["occupied"] -= freed
            model["available"] += freed
        elif op == "declare":
            if rng.random() < 0.3 and model["reserved"] > 0:
                # Trying to forget Places' holds is refused.
                r = await declare(client, unit, reserved=model["reserved"] - 1, available=0)
                assert r.status_code == 422, r.text
            else:
                occupied = rng.randint(0, installed - model["reserved"])
                available = installed - model["reserved"] - occupied
                r = await declare(client, unit, occupied=occupied, available=available)
                assert r.status_code == 200, r.text
                model.update(occupied=occupied, available=available)
        else:
            continue
        outcomes[op] = outcomes.get(op, 0) + 1
        snap = await snapshot(pool, unit["id"])
        assert {k: snap[k] for k in model} == model, (op, snap, model)
        await assert_one_truth(pool, unit["id"])
    assert set(outcomes) == {"hold", "admit", "release", "refuse", "expire", "exit", "declare"}


async def test_concurrent_holds_and_declarations(client, pool):
    """Holds and re-declarations racing on one unit serialize on the snapshot row."""
    unit = await new_unit(client, pool, available=6, installed=20)  # occupied 14
    requests = [await new_request(client) for _ in range(12)]
    calls = [hold(client, request, "unit", unit["id"]) for request in requests]
    calls += [declare(client, unit, occupied=14 - k, available=6 + k) for k in range(3)]
    results = await asyncio.gather(*calls)
    holds = results[:12]
    assert {r.status_code for r in holds} <= {201, 409}
    assert any(r.status_code == 201 for r in holds)
    # A declaration that no longer fits next to the new holds is refused (422), never lost.
    assert {r.status_code for r in results[12:]} <= {200, 422}
    await assert_one_truth(pool, unit["id"])


async def test_random_sequences_on_a_carer(client, pool):
    rng = random.Random(7)
    carer = await new_carer(client, pool, capacity=4, available=4)
    model = 4
    held: dict[str, int] = {}
    admitted: dict[str, int] = {}
    for _ in range(40):
        op = rng.choice(["hold", "hold", "admit", "release", "exit"])
        if op == "hold":
            n = rng.randint(1, 2)
            request = await new_request(client, n_children=n)
            r = await hold(client, request, "carer", carer["id"])
            assert r.status_code == (201 if model >= n else 409), r.text
            if r.status_code == 201:
                held[r.json()["id"]] = n
                model -= n
        elif op in ("admit", "release") and held:
            hold_id = rng.choice(sorted(held))
            n = held.pop(hold_id)
            r = await client.post(f"/v1/holds/{hold_id}/{op}", headers=dept())
            assert r.status_code == 200, r.text
            if op == "admit":
                admitted[hold_id] = n
            else:
                model += n
        elif op == "exit" and admitted:
            hold_id = rng.choice(sorted(admitted))
            n = admitted.pop(hold_id)
            r = await client.post(
                f"/v1/placements/{hold_id}/exit", json={"reason": "x"}, headers=dept()
            )
            assert r.status_code == 200, r.text
            model += n
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                SELECT c.available_places, c.version,
                       (SELECT count(*) FROM carer_declarations d WHERE d.carer_id = c.id) AS rows,
                       (SELECT available_places FROM carer_declarations d WHERE d.carer_id = c.id
                         ORDER BY id DESC LIMIT 1) AS last,
                       (SELECT coalesce(sum(places), 0) FROM holds h
                         WHERE h.carer_id = c.id AND h.status IN ('held', 'admitted')) AS taken
                  FROM foster_carers c WHERE c.id = $1
                """,
                uuid.UUID(carer["id"]),
            )
        assert row["available_places"] == model == row["last"]
        assert row["available_places"] + row["taken"] == 4
        # Every change after the fixture's insert (version 1, no history) wrote one row.
        assert row["version"] == row["rows"] + 1
