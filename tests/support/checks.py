"""State checks: read what the API wrote, to compare before and after a call or to assert
that the counts of a unit agree everywhere (one truth for capacity)."""

import uuid
from typing import Any

import asyncpg

from api.models import SNAPSHOT_OFFER_COLUMNS

NOT_HISTORY = ("location", "changed_xid", *SNAPSHOT_OFFER_COLUMNS)
"""A snapshot's columns that its history does not record: the structure's point and the
offer's columns copied for search (0021), the transaction that last wrote it (0023)."""


async def snapshot(pool: asyncpg.Pool, unit_id: str) -> dict[str, Any]:
    """A unit's current snapshot row, as the history would record it."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM capacity_snapshots WHERE unit_id = $1 AND temporality = 'current'",
            uuid.UUID(unit_id),
        )
    snap = dict(row)
    for column in NOT_HISTORY:
        snap.pop(column)
    return snap


async def fingerprint(
    pool: asyncpg.Pool,
    request_ids: list[str],
    unit_id: str | None = None,
    carer_id: str | None = None,
) -> dict[str, Any]:
    """Everything a refused call could have touched, to prove it touched nothing."""
    ids = [uuid.UUID(i) for i in request_ids]
    async with pool.acquire() as conn:
        hold_ids = [
            str(h) for h in await conn.fetch("SELECT id FROM holds WHERE request_id = ANY($1)", ids)
        ]
        texts = [*request_ids, *hold_ids]
        state: dict[str, Any] = {
            "requests": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT id, status, version, updated_at FROM placement_requests"
                    " WHERE id = ANY($1) ORDER BY id",
                    ids,
                )
            ],
            "holds": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT id, status, reason, updated_at FROM holds"
                    " WHERE request_id = ANY($1) ORDER BY id",
                    ids,
                )
            ],
            "history": await conn.fetchval(
                "SELECT count(*) FROM request_events WHERE request_id = ANY($1)", ids
            ),
            "outbox": await conn.fetchval(
                """
                SELECT count(*) FROM outbox_events
                 WHERE data->>'id' = ANY($1::text[]) OR data->>'request_id' = ANY($1::text[])
                    OR data->>'unit_id' = $2 OR (type = 'carer.availability_updated'
                                                 AND data->>'id' = $3)
                """,
                texts,
                unit_id,
                carer_id,
            ),
            "audit": await conn.fetchval(
                "SELECT count(*) FROM audit_entries WHERE object_id = ANY($1::text[])"
                " OR detail->>'request_id' = ANY($1::text[])",
                texts,
            ),
        }
        if unit_id:
            state["snapshot"] = dict(
                await conn.fetchrow(
                    "SELECT * FROM capacity_snapshots WHERE unit_id = $1", uuid.UUID(unit_id)
                )
            )
            state["declarations"] = await conn.fetchval(
                "SELECT count(*) FROM capacity_declarations WHERE unit_id = $1",
                uuid.UUID(unit_id),
            )
        if carer_id:
            state["carer"] = dict(
                await conn.fetchrow(
                    "SELECT available_places, version FROM foster_carers WHERE id = $1",
                    uuid.UUID(carer_id),
                )
            )
            state["carer_declarations"] = await conn.fetchval(
                "SELECT count(*) FROM carer_declarations WHERE carer_id = $1",
                uuid.UUID(carer_id),
            )
    return state


async def assert_one_truth(pool: asyncpg.Pool, unit_id: str, own_reserved: int = 0) -> None:
    """The snapshot equals the last history row, its version counts the history, and its
    ``reserved`` is the places held through Places plus the establishment's own."""
    uid = uuid.UUID(unit_id)
    async with pool.acquire() as conn:
        snap = dict(
            await conn.fetchrow(
                "SELECT * FROM capacity_snapshots WHERE unit_id = $1 AND temporality = 'current'",
                uid,
            )
        )
        last = await conn.fetchrow(
            "SELECT * FROM capacity_declarations WHERE unit_id = $1 AND temporality = 'current'"
            " ORDER BY id DESC LIMIT 1",
            uid,
        )
        rows = await conn.fetchval(
            "SELECT count(*) FROM capacity_declarations"
            " WHERE unit_id = $1 AND temporality = 'current'",
            uid,
        )
        held = await conn.fetchval(
            "SELECT coalesce(sum(places), 0) FROM holds WHERE unit_id = $1 AND status = 'held'",
            uid,
        )
        mismatched = await conn.fetch(
            """
            SELECT h.id, h.status, r.status AS request_status
              FROM holds h JOIN placement_requests r ON r.id = h.request_id
             WHERE h.unit_id = $1
               AND NOT ((h.status = 'held' AND r.status = 'held')
                     OR (h.status = 'admitted' AND r.status = 'placed')
                     OR (h.status = 'exited' AND r.status = 'exited')
                     OR h.status IN ('released', 'refused', 'expired'))
            """,
            uid,
        )
    for column in NOT_HISTORY:
        snap.pop(column)
    assert {k: last[k] for k in snap} == snap
    assert snap["version"] == rows
    assert snap["reserved"] == held + own_reserved, (snap, held)
    used = snap["occupied"] + snap["reserved"] + snap["available"] + snap["closed"]
    assert used <= snap["installed"] + snap["additional"]
    assert not mismatched
