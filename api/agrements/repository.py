"""Agréments in SQL. Validity and the state a reader sees come from the SQL functions of
migration 0012 (``places_agrement_valid``, ``places_agrement_state``), as of the database's
``current_date`` — never re-derived here nor in Python."""

from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from api.holds.repository import HOLD_COLUMNS

_STATE = (
    "places_agrement_state(c.agrement_state, c.issued_on, c.valid_until, c.suspended_from,"
    " c.suspended_until, current_date)"
)
_VALID = (
    "places_agrement_valid(c.agrement_state, c.issued_on, c.valid_until, c.suspended_from,"
    " c.suspended_until, current_date)"
)

COLUMNS = f"""
    c.id AS carer_id, c.agrement_number AS number, c.authority AS issuing_authority,
    c.agrement_department, c.department, c.commune, c.issued_on, c.valid_until,
    c.agrement_capacity AS capacity, c.derogation_children, c.derogation_reason,
    c.derogation_until, c.age_min_months, c.age_max_months, c.timings, c.publics, c.formulas,
    c.disability_specialised, c.disability_supported, {_STATE} AS state,
    c.agrement_state AS stored_state, c.suspended_from, c.suspended_until,
    c.suspension_reason, c.withdrawn_on, c.withdrawal_reason, c.renewal_requested_on,
    c.employer_authority, c.employer_structure, s.finess AS employer_finess,
    s.name AS employer_name, c.employing_authority, c.open_to_other_authorities,
    c.agrement_version AS version, c.available_places, c.status, c.status_until,
    c.preferred_age_min_months, c.preferred_age_max_months, c.preferred_timings,
    c.preferred_publics, c.preferred_formulas, current_date AS today
"""
_FROM = "FROM foster_carers c LEFT JOIN structures s ON s.id = c.employer_structure"


async def get(
    conn: asyncpg.Connection, carer_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    """One agrément (``lock``: the carer's row ``FOR UPDATE``, last in the lock order)."""
    suffix = " FOR UPDATE OF c" if lock else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} {_FROM} WHERE c.id = $1{suffix}", carer_id
    )
    return row


async def today(conn: asyncpg.Connection) -> date:
    """The database's day: the one the validity functions and triggers use."""
    day: date = await conn.fetchval("SELECT current_date")
    return day


async def list_for(
    conn: asyncpg.Connection,
    authority: str,
    state: str | None,
    expiring_within_days: int | None,
    derogation: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """The issuer's agréments, those expiring first (index on ``authority, valid_until``)."""
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS}, count(*) OVER () AS total
          {_FROM}
         WHERE c.authority = $1
           AND ($2::text IS NULL OR {_STATE} = $2)
           AND ($3::int IS NULL
                OR c.valid_until BETWEEN current_date AND current_date + $3::int)
           AND ($4::boolean IS NULL OR (c.derogation_children IS NOT NULL) = $4)
         ORDER BY c.valid_until, c.agrement_number
         LIMIT $5 OFFSET $6
        """,
        authority,
        state,
        expiring_within_days,
        derogation,
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = await conn.fetchval(
            f"""
            SELECT count(*) FROM foster_carers c
             WHERE c.authority = $1 AND ($2::text IS NULL OR {_STATE} = $2)
               AND ($3::int IS NULL
                    OR c.valid_until BETWEEN current_date AND current_date + $3::int)
               AND ($4::boolean IS NULL OR (c.derogation_children IS NOT NULL) = $4)
            """,
            authority,
            state,
            expiring_within_days,
            derogation,
        )
    return list(rows), int(total)


async def commune(conn: asyncpg.Connection, insee: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT insee, department, authority FROM communes WHERE insee = $1", insee
    )
    return row


async def structure_by_finess(conn: asyncpg.Connection, finess: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, finess, category, authority FROM structures WHERE finess = $1", finess
    )
    return row


async def authority_exists(conn: asyncpg.Connection, code: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM authorities WHERE code = $1", code))


_INSERT_SQL = """
INSERT INTO foster_carers (
    agrement_number, agrement_department, department, commune, location,
    agrement_capacity, age_min_months, age_max_months, timings, publics, formulas,
    available_places, declared_by, issued_on, valid_until, derogation_children,
    derogation_reason, derogation_until, employer_authority, employer_structure,
    open_to_other_authorities, disability_specialised, disability_supported)
SELECT $1, c.department, c.department, c.insee,
       ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography,
       $5, $6, $7, $8, $18, $19, 0, $9, $10, $11, $12, $13, $14, $15, $16, $17, $20, $21
  FROM communes c
 WHERE c.insee = $2
ON CONFLICT (agrement_number) DO NOTHING
RETURNING id
"""


async def insert(conn: asyncpg.Connection, values: dict[str, Any]) -> UUID | None:
    """The new carer's id, or None when the number is already registered. Their preferences
    start as the agrément (trigger of 0012), their free places at 0 (they declare them)."""
    carer_id: UUID | None = await conn.fetchval(
        _INSERT_SQL,
        values["number"],
        values["commune"],
        values["lat"],
        values["lon"],
        values["capacity"],
        values["age_min_months"],
        values["age_max_months"],
        values["timings"],
        values["declared_by"],
        values["issued_on"],
        values["valid_until"],
        values["derogation_children"],
        values["derogation_reason"],
        values["derogation_until"],
        values["employer_authority"],
        values["employer_structure"],
        values["open_to_other_authorities"],
        values["publics"],
        values["formulas"],
        values["disability_specialised"],
        values["disability_supported"],
    )
    return carer_id


# The edit, in one statement: the agrément's new terms, and the carer's part clipped within
# them (CHECK foster_carers_preferences, foster_carers_available): preferred ages cut to the
# new range (the agrément's whole range when they no longer meet it), preferred timings,
# publics and formulas each intersected (all the agrément's when nothing is left), free places
# at most the capacity minus the places held or occupied through Places, and none on an
# agrément not valid today.
_EDIT_SQL = """
WITH old AS (
    SELECT c.id, c.preferred_age_min_months, c.preferred_age_max_months, c.preferred_timings,
           c.preferred_publics, c.preferred_formulas,
           c.available_places, c.agrement_state, c.suspended_from, c.suspended_until,
           (SELECT coalesce(sum(h.places), 0) FROM holds h
             WHERE h.carer_id = c.id AND h.status IN ('held', 'admitted')) AS taken
      FROM foster_carers c
     WHERE c.id = $1
), next AS (
    SELECT o.id,
           greatest(o.preferred_age_min_months, $8)
               <= least(o.preferred_age_max_months, $9) AS ages_meet,
           ARRAY(SELECT m FROM unnest(o.preferred_timings) m
                  WHERE m = ANY($10::text[]) ORDER BY m) AS timings,
           ARRAY(SELECT m FROM unnest(o.preferred_publics) m
                  WHERE m = ANY($11::text[]) ORDER BY m) AS publics,
           ARRAY(SELECT m FROM unnest(o.preferred_formulas) m
                  WHERE m = ANY($12::text[]) ORDER BY m) AS formulas,
           CASE WHEN places_agrement_valid(o.agrement_state, $2, $3, o.suspended_from,
                                           o.suspended_until, current_date)
                THEN least(o.available_places, greatest($4 - o.taken, 0))
                ELSE 0 END AS places
      FROM old o
)
UPDATE foster_carers c
   SET issued_on = $2, valid_until = $3, agrement_capacity = $4,
       derogation_children = $5, derogation_reason = $6, derogation_until = $7,
       age_min_months = $8, age_max_months = $9, timings = $10, publics = $11,
       formulas = $12, disability_specialised = $13, disability_supported = $14,
       preferred_age_min_months = CASE WHEN n.ages_meet
                                       THEN greatest(c.preferred_age_min_months, $8)
                                       ELSE $8 END,
       preferred_age_max_months = CASE WHEN n.ages_meet
                                       THEN least(c.preferred_age_max_months, $9)
                                       ELSE $9 END,
       preferred_timings = CASE WHEN cardinality(n.timings) > 0 THEN n.timings
                                ELSE $10::text[] END,
       preferred_publics = CASE WHEN cardinality(n.publics) > 0 THEN n.publics
                                ELSE $11::text[] END,
       preferred_formulas = CASE WHEN cardinality(n.formulas) > 0 THEN n.formulas
                                 ELSE $12::text[] END,
       available_places = n.places,
       agrement_version = c.agrement_version + 1
  FROM next n
 WHERE c.id = n.id
"""


async def edit(conn: asyncpg.Connection, carer_id: UUID, terms: dict[str, Any]) -> None:
    await conn.execute(
        _EDIT_SQL,
        carer_id,
        terms["issued_on"],
        terms["valid_until"],
        terms["capacity"],
        terms["derogation_children"],
        terms["derogation_reason"],
        terms["derogation_until"],
        terms["age_min_months"],
        terms["age_max_months"],
        terms["timings"],
        terms["publics"],
        terms["formulas"],
        terms["disability_specialised"],
        terms["disability_supported"],
    )


async def suspend(
    conn: asyncpg.Connection, carer_id: UUID, start: date, until: date | None, reason: str
) -> None:
    """The suspension and, in the same write, no free place (trigger of 0012)."""
    await conn.execute(
        """
        UPDATE foster_carers
           SET agrement_state = 'suspended', suspended_from = $2, suspended_until = $3,
               suspension_reason = $4, available_places = 0,
               agrement_version = agrement_version + 1
         WHERE id = $1
        """,
        carer_id,
        start,
        until,
        reason,
    )


async def reinstate(conn: asyncpg.Connection, carer_id: UUID) -> None:
    """Valid again; the free places stay at 0 until the carer declares them."""
    await conn.execute(
        """
        UPDATE foster_carers
           SET agrement_state = 'valid', suspended_from = NULL, suspended_until = NULL,
               suspension_reason = NULL, agrement_version = agrement_version + 1
         WHERE id = $1
        """,
        carer_id,
    )


async def withdraw(conn: asyncpg.Connection, carer_id: UUID, on: date, reason: str) -> None:
    """Withdrawn for good (a suspension it ended is in the audit), no free place."""
    await conn.execute(
        """
        UPDATE foster_carers
           SET agrement_state = 'withdrawn', withdrawn_on = $2, withdrawal_reason = $3,
               suspended_from = NULL, suspended_until = NULL, suspension_reason = NULL,
               available_places = 0, agrement_version = agrement_version + 1
         WHERE id = $1
        """,
        carer_id,
        on,
        reason,
    )


async def request_renewal(conn: asyncpg.Connection, carer_id: UUID, on: date) -> None:
    await conn.execute(
        "UPDATE foster_carers SET renewal_requested_on = $2,"
        " agrement_version = agrement_version + 1 WHERE id = $1",
        carer_id,
        on,
    )


async def lock_pending_holds(conn: asyncpg.Connection, carer_id: UUID) -> list[asyncpg.Record]:
    """The holds still ``held`` on the carer, locked in id order — first in the lock order
    (hold → request → carer), before the carer's row."""
    return list(
        await conn.fetch(
            f"SELECT {HOLD_COLUMNS} FROM holds WHERE carer_id = $1 AND status = 'held'"
            " ORDER BY id FOR UPDATE",
            carer_id,
        )
    )


async def pending_hold_ids(conn: asyncpg.Connection, carer_id: UUID) -> list[UUID]:
    return [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM holds WHERE carer_id = $1 AND status = 'held'", carer_id
        )
    ]


_TO_REVIEW = f"""
SELECT h.id AS placement_id, h.request_id, h.carer_id, h.places, h.updated_at AS admitted_at,
       r.authority AS placing_authority, r.department AS placing_department,
       c.employing_authority, c.authority AS issuing_authority, c.department,
       {_STATE} AS agrement_state, c.suspension_reason, c.withdrawal_reason
  FROM holds h
  JOIN foster_carers c ON c.id = h.carer_id
  JOIN placement_requests r ON r.id = h.request_id
  LEFT JOIN structures s ON s.id = c.employer_structure
 WHERE h.status = 'admitted' AND NOT {_VALID}
"""


async def to_review(
    conn: asyncpg.Connection, authority: str | None, finess: str | None, limit: int
) -> list[asyncpg.Record]:
    """Children placed with carers whose agrément is not valid today: for an authority as
    the placing one or as the employer, for a placement service its own carers'."""
    return list(
        await conn.fetch(
            _TO_REVIEW
            + """
           AND (r.authority = $1 OR c.employing_authority = $1 OR s.finess = $2)
         ORDER BY h.updated_at, h.id
         LIMIT $3
            """,
            authority,
            finess,
            limit,
        )
    )


async def to_review_of_carer(conn: asyncpg.Connection, carer_id: UUID) -> list[asyncpg.Record]:
    return list(await conn.fetch(_TO_REVIEW + " AND h.carer_id = $1 ORDER BY h.id", carer_id))
