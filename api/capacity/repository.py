"""Capacity's SQL: the one place that writes a unit's snapshot and history, and a carer's
availability and history — for declarations and for the workflow's moves alike.

A unit's ``capacity_snapshots`` row is the truth and ``capacity_declarations`` its
append-only history; a carer's row in ``foster_carers`` is the truth and
``carer_declarations`` its history. Every write here changes both in one statement, so the
snapshot always equals the last history row. Callers lock first (``lock_unit``,
``lock_current_snapshot``, ``lock_carer``) and write in the same transaction.
"""

from typing import Any
from uuid import UUID

import asyncpg

from api import changes, precision

COUNT_FIELDS = ("installed", "occupied", "reserved", "closed", "available", "additional")

SNAPSHOT_COLUMNS = (
    "unit_id, temporality, version, declared_at, declared_by, installed, occupied, reserved,"
    " closed, available, additional, available_gender"
)


def agrement_valid_sql(c: str = "c", day: str = "current_date") -> str:
    """The carer row ``c``'s agrément is valid on ``day``: the SQL function of migration
    0012, never re-derived (CASF L421-3: five years; L421-6: suspension, withdrawal)."""
    return (
        f"places_agrement_valid({c}.agrement_state, {c}.issued_on, {c}.valid_until,"
        f" {c}.suspended_from, {c}.suspended_until, {day})"
    )


def agrement_state_sql(c: str = "c", day: str = "current_date") -> str:
    """What a reader sees of the agrément on ``day`` (``expired``, ``not_yet_valid`` derived)."""
    return (
        f"places_agrement_state({c}.agrement_state, {c}.issued_on, {c}.valid_until,"
        f" {c}.suspended_from, {c}.suspended_until, {day})"
    )


def not_on_leave_sql(c: str = "c") -> str:
    """Not on leave today: ``active``, or a leave that starts later (``leave_from`` in the
    future: the carer declared it ahead) or already ended (``status_until`` passed: nobody
    has to come back and say so)."""
    return (
        f"({c}.status = 'active' OR {c}.leave_from > current_date"
        f" OR {c}.status_until < current_date)"
    )


def carer_free_sql(c: str = "c") -> str:
    """**The** predicate of a carer whose places count as free today — search, the
    assignment optimiser, statistics — in one place (#15): agrément valid today and not on
    leave today. Carers declare "now" only, so today is the only day asked."""
    return f"({agrement_valid_sql(c)} AND {not_on_leave_sql(c)})"


def carer_open_to_sql(c: str, authority_param: str) -> str:
    """The carer may be proposed to (and held by) the authority ``authority_param``: their
    employer's own authority, or any when the employer opened them to others."""
    return f"({c}.employing_authority = {authority_param} OR {c}.open_to_other_authorities)"


_CARER_PUBLIC = (
    "id, department, commune, agrement_capacity, age_min_months, age_max_months, timings,"
    " publics, formulas, disability_specialised, disability_supported, status, leave_from,"
    " status_until, available_places, version, declared_at, preferred_age_min_months,"
    " preferred_age_max_months, preferred_timings, preferred_publics, preferred_formulas,"
    " valid_until,"
    " employing_authority, open_to_other_authorities"
)


def carer_public_columns(c: str = "foster_carers") -> str:
    """A carer as others may see them (``FosterCarerOut``) from the row ``c`` (an alias, or
    the table's name): commune level, never the home's location; the agrément's state as of
    today."""
    columns = ", ".join(f"{c}.{name.strip()}" for name in _CARER_PUBLIC.split(","))
    return f"{columns}, {agrement_state_sql(c)} AS agrement_state"


CARER_PUBLIC_COLUMNS = carer_public_columns()
"""``carer_public_columns`` of a query that reads ``foster_carers`` without an alias."""

INSERT_UNIT_HISTORY = """
INSERT INTO capacity_declarations
       (unit_id, temporality, version, declared_at, declared_by, source,
        installed, occupied, reserved, closed, available, additional, available_gender)
VALUES ({values})
"""

_PREVIOUS = ", ".join(f"c.{c.strip()} AS prev_{c.strip()}" for c in SNAPSHOT_COLUMNS.split(","))
LOCK_SQL = f"""
SELECT u.id, u.installed, s.id AS structure_id, s.finess, s.department, s.authority,
       now() AS now,
       snap.*
  FROM units u
  JOIN structures s ON s.id = u.structure_id
  LEFT JOIN LATERAL (
        SELECT {_PREVIOUS}
          FROM capacity_snapshots c
         WHERE c.unit_id = u.id AND c.temporality = $2
           FOR UPDATE
       ) snap ON true
 WHERE u.id = $1
"""
"""The unit, its establishment, and its snapshot for the temporality, row-locked: concurrent
declarations and workflow moves on the same snapshot serialize here."""

_ROW = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"

# A declaration is the hot path: it writes its seven rows in one statement (a round trip is
# worth more than the CTE's length) — history, snapshot, the unit's installed count, and the
# rows of ``api.changes`` (outbox event, audit entry, response kept for Idempotency-Key
# replays, NOTIFY at commit) built from the very templates the generic helpers run.
DECLARE_SQL = f"""
WITH history AS (
    {changes.bind(INSERT_UNIT_HISTORY, values=_ROW)}
), snapshot AS (
    INSERT INTO capacity_snapshots AS s
           (unit_id, temporality, version, declared_at, declared_by, source,
            installed, occupied, reserved, closed, available, additional, available_gender,
            location)
    SELECT {_ROW}, {precision.point_sql("st", "cm")}
      FROM units u
      JOIN structures st ON st.id = u.structure_id
      JOIN communes cm ON cm.insee = st.commune
     WHERE u.id = $1
    ON CONFLICT (unit_id, temporality) DO UPDATE
       SET version = EXCLUDED.version, declared_at = EXCLUDED.declared_at,
           declared_by = EXCLUDED.declared_by, source = EXCLUDED.source,
           installed = EXCLUDED.installed, occupied = EXCLUDED.occupied,
           reserved = EXCLUDED.reserved, closed = EXCLUDED.closed,
           available = EXCLUDED.available, additional = EXCLUDED.additional,
           available_gender = EXCLUDED.available_gender
), unit AS (
    UPDATE units SET installed = $7
     WHERE id = $1 AND $2 = 'current' AND installed <> $7
), event AS (
    {
    changes.bind(
        changes.INSERT_EVENT,
        type="$14",
        department="$15",
        authority="$26",
        occurred_at="$4",
        data="$16",
        national="$16",
    )
}
), audit AS (
    {
    changes.bind(
        changes.INSERT_AUDIT,
        occurred_at="$4",
        actor="$5",
        role="$17",
        action="$18",
        object_type="'unit'",
        object_id="$19",
        department="$15",
        authority="$26",
        detail="$20",
        person_id="$27",
        function="$28",
        actor_authority="$29",
    )
}
), idempotency AS (
    {changes.bind(changes.STORE_RESPONSE, status="$21", body="$22", principal="$23", key="$24")}
)
SELECT {changes.bind(changes.NOTIFY, channel="$25", department="$15")}
"""
"""Parameters: $1–$13 the history/snapshot row (unit, temporality, version, declared_at,
declared_by, source, the six counts, available_gender); $14 event type, $15 department,
$16 payload; $17 role, $18 action, $19 unit id as text, $20 audit detail; $21 status,
$22 body kept for replays, $23 principal key, $24 Idempotency-Key; $25 NOTIFY channel;
$26 the unit's structure's authority (event and audit entry); $27 the actor's person id,
$28 their function, $29 the authority they act for (audit entry)."""


async def lock_unit(
    conn: asyncpg.Connection, unit_id: UUID, temporality: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(LOCK_SQL, unit_id, temporality)
    return row


async def held_on_unit(conn: asyncpg.Connection, unit_id: UUID) -> int:
    """Places held through Places on the unit right now (holds ``held``)."""
    held: int = await conn.fetchval(
        "SELECT coalesce(sum(places), 0) FROM holds WHERE unit_id = $1 AND status = 'held'",
        unit_id,
    )
    return held


async def declare_unit(conn: asyncpg.Connection, *params: Any) -> None:
    """Run ``DECLARE_SQL`` with its 29 parameters (see its docstring)."""
    await conn.execute(DECLARE_SQL, *params)


async def lock_current_snapshot(conn: asyncpg.Connection, unit_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {SNAPSHOT_COLUMNS} FROM capacity_snapshots"
        " WHERE unit_id = $1 AND temporality = 'current' FOR UPDATE",
        unit_id,
    )
    return row


_MOVE_VALUES = "$1, 'current', $2, now(), $3, $4, $5, $6, $7, $8, $9, $10, $11"
_MOVE_SQL = f"""
WITH history AS (
    {changes.bind(INSERT_UNIT_HISTORY, values=_MOVE_VALUES)}
)
UPDATE capacity_snapshots
   SET version = $2, declared_at = now(), declared_by = $3, source = $4,
       installed = $5, occupied = $6, reserved = $7, closed = $8, available = $9,
       additional = $10, available_gender = $11
 WHERE unit_id = $1 AND temporality = 'current'
RETURNING {SNAPSHOT_COLUMNS}
"""


async def write_current_snapshot(
    conn: asyncpg.Connection,
    unit_id: UUID,
    version: int,
    actor: str,
    source: str,
    counts: dict[str, Any],
) -> asyncpg.Record:
    """A workflow move on a locked ``current`` snapshot: history row and snapshot, dated by
    the database clock."""
    row: asyncpg.Record = await conn.fetchrow(
        _MOVE_SQL,
        unit_id,
        version,
        actor,
        source,
        *(counts[name] for name in COUNT_FIELDS),
        counts["available_gender"],
    )
    return row


async def lock_carer(conn: asyncpg.Connection, carer_id: UUID) -> asyncpg.Record | None:
    """The carer's row, locked: declarations and moves on one carer serialize here; with
    their agrément's validity and state today, and their employer."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, department, authority, status, status_until, leave_from, available_places,"
        " agrement_capacity, age_min_months, age_max_months, timings, publics, formulas,"
        " preferred_age_min_months, preferred_age_max_months, preferred_timings,"
        " preferred_publics, preferred_formulas, version, employer_authority,"
        " employing_authority,"
        " open_to_other_authorities, (SELECT s.finess FROM structures s"
        "  WHERE s.id = c.employer_structure) AS employer_finess, "
        + agrement_valid_sql("c")
        + " AS agrement_valid, "
        + agrement_state_sql("c")
        + " AS agrement_today, "
        + not_on_leave_sql("c")
        + " AS not_on_leave FROM foster_carers c WHERE id = $1 FOR UPDATE OF c",
        carer_id,
    )
    return row


async def taken_on_carer(conn: asyncpg.Connection, carer_id: UUID) -> int:
    """Places held or occupied through Places with the carer (holds ``held``/``admitted``)."""
    taken: int = await conn.fetchval(
        "SELECT coalesce(sum(places), 0) FROM holds"
        " WHERE carer_id = $1 AND status IN ('held', 'admitted')",
        carer_id,
    )
    return taken


_CARER_WRITE_SQL = f"""
WITH carer AS (
    UPDATE foster_carers
       SET available_places = $2, status = $3, status_until = $4, leave_from = $7,
           preferred_age_min_months = coalesce($8, preferred_age_min_months),
           preferred_age_max_months = coalesce($9, preferred_age_max_months),
           preferred_timings = coalesce($10::text[], preferred_timings),
           preferred_publics = coalesce($11::text[], preferred_publics),
           preferred_formulas = coalesce($12::text[], preferred_formulas),
           version = version + 1, declared_at = now(), declared_by = $5
     WHERE id = $1
 RETURNING {CARER_PUBLIC_COLUMNS}
), history AS (
    INSERT INTO carer_declarations
           (carer_id, available_places, status, status_until, version, declared_at,
            declared_by, source)
    SELECT id, available_places, status, status_until, version, declared_at, $5, $6
      FROM carer
)
SELECT * FROM carer
"""


async def write_carer(
    conn: asyncpg.Connection,
    carer_id: UUID,
    available_places: int,
    status: str,
    status_until: Any,
    actor: str,
    source: str,
    leave_from: Any = None,
    preferences: dict[str, Any] | None = None,
) -> asyncpg.Record:
    """A declaration or a move on a locked carer: the carer row and its history row (which
    keeps what it kept: places, status, until — the leave's start and the preferences live
    on the carer row only). ``preferences`` (``api.needs.OfferNeedsIn.offer_values``) None:
    unchanged."""
    prefs = preferences or {}
    names = ("age_min_months", "age_max_months", "timings", "publics", "formulas")
    row: asyncpg.Record = await conn.fetchrow(
        _CARER_WRITE_SQL,
        carer_id,
        available_places,
        status,
        status_until,
        actor,
        source,
        leave_from,
        *(prefs.get(n) for n in names),
    )
    return row


async def carer_by_id(conn: asyncpg.Connection, carer_id: UUID) -> asyncpg.Record | None:
    """A carer's public view and the authority of its agrément, for scope checks (no lock)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {CARER_PUBLIC_COLUMNS}, authority FROM foster_carers WHERE id = $1", carer_id
    )
    return row


async def write_openness(
    conn: asyncpg.Connection, carer_id: UUID, open_to_others: bool
) -> asyncpg.Record:
    """The employer's choice on a locked carer: a new version of the carer's part. Not a
    declaration of places: neither the history nor ``declared_at``/``declared_by`` (the
    freshness of the places) change; the audit entry says who."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""
        UPDATE foster_carers
           SET open_to_other_authorities = $2, version = version + 1
         WHERE id = $1
     RETURNING {CARER_PUBLIC_COLUMNS}
        """,
        carer_id,
        open_to_others,
    )
    return row
