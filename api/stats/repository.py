"""Aggregates in SQL: one grouped query per table, joined on the department code (the map's
geography) or on the competent authority's code (issue 13).

Both views are the same query, grouped by the ``department`` or the ``authority`` column of
structures (for their units), foster carers and placement requests: every row has exactly one
of each, so each unit, carer and request is counted once per view and both views sum to the
same national totals. The query reads each offer table once (units with their snapshots,
carers, requests), so the national table costs a few tens of milliseconds on the national
dataset (about 7,000 units and 38,000 carers), not one query per department.
"""

from datetime import date
from typing import Any, Literal

import asyncpg

from api.capacity.repository import carer_free_sql
from api.requests.service import local_today
from geo.referential import load_authorities

Grouping = Literal["department", "authority"]
"""The column the figures are grouped by; only these two names ever reach the SQL text."""

TIMEZONES = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}
"""Overseas days start hours apart from Paris; a department's history is bucketed in its own
calendar (the same zones as ``api.requests.service.local_today``)."""

COUNT_FIELDS = (
    "units",
    "undeclared_units",
    "installed",
    "occupied",
    "reserved",
    "available",
    "closed",
    "additional",
    "available_h24",
    "available_h48",
    "available_d7",
    "carers",
    "carers_active",
    "carer_places_available",
    "requests_waiting",
    "children_waiting",
    "measures_not_executed",
    "declarations",
    "stale_declarations",
    "open_places",
)

_UNITS = """
units_agg AS (
    SELECT s.{key} AS code,
           count(*) AS units,
           count(*) FILTER (WHERE c.unit_id IS NULL) AS undeclared_units,
           sum(u.installed) AS installed,
           sum(c.occupied) AS occupied,
           sum(c.reserved) AS reserved,
           sum(c.available) AS available,
           sum(c.closed) AS closed,
           sum(c.additional) AS additional,
           sum(coalesce(h24.available, c.available)) AS available_h24,
           sum(coalesce(h48.available, c.available)) AS available_h48,
           sum(coalesce(d7.available, c.available)) AS available_d7,
           count(c.unit_id) AS declarations,
           count(*) FILTER (WHERE c.declared_at < now() - make_interval(days => $1))
               AS stale_declarations,
           sum(CASE WHEN c.unit_id IS NULL THEN u.installed
                    ELSE c.installed + c.additional - c.closed END) AS open_places
      FROM units u
      JOIN structures s ON s.id = u.structure_id
      LEFT JOIN capacity_snapshots c ON c.unit_id = u.id AND c.temporality = 'current'
      LEFT JOIN capacity_snapshots h24 ON h24.unit_id = u.id AND h24.temporality = 'h24'
      LEFT JOIN capacity_snapshots h48 ON h48.unit_id = u.id AND h48.temporality = 'h48'
      LEFT JOIN capacity_snapshots d7 ON d7.unit_id = u.id AND d7.temporality = 'd7'
     WHERE ($3::text IS NULL OR s.{key} = $3)
     GROUP BY s.{key}
)"""

# A carer counts (active, free places, open places) only when their places are free today:
# agrément valid and not on leave — the one predicate search uses (#15).
_CARERS = """
carers_agg AS (
    SELECT c.{key} AS code,
           count(*) AS carers,
           count(*) FILTER (WHERE {free}) AS carers_active,
           sum(c.available_places) FILTER (WHERE {free}) AS carer_places_available,
           sum(c.agrement_capacity) FILTER (WHERE {free}) AS carer_open_places,
           count(*) FILTER (WHERE {free}
                              AND c.declared_at < now() - make_interval(days => $1))
               AS carer_stale
      FROM foster_carers c
     WHERE ($3::text IS NULL OR c.{key} = $3)
     GROUP BY c.{key}
)"""

_REQUESTS = """
requests_agg AS (
    -- "today" is the request's department's (its calendar), whatever the grouping
    SELECT r.{key} AS code,
           count(*) FILTER (WHERE r.status = 'waiting') AS requests_waiting,
           sum(jsonb_array_length(r.children)) FILTER (WHERE r.status = 'waiting')
               AS children_waiting,
           max(t.today - r.decided_on) FILTER (WHERE r.status = 'waiting')
               AS oldest_waiting_days,
           count(*) FILTER (WHERE r.status IN ('waiting', 'held')
                              AND t.today - r.decided_on >= $2) AS measures_not_executed
      FROM placement_requests r
      JOIN unnest($4::text[], $5::date[]) AS t(code, today) ON t.code = r.department
     WHERE r.status IN ('waiting', 'held')
       AND ($3::text IS NULL OR r.{key} = $3)
     GROUP BY r.{key}
)"""

_NO_REQUESTS = """
requests_agg AS (
    -- no placement_requests table yet: no row (the parameters are named only so that
    -- both variants of the query take the same five)
    SELECT NULL::text AS code, 0 AS requests_waiting, 0 AS children_waiting,
           NULL::int AS oldest_waiting_days, 0 AS measures_not_executed
     WHERE false AND $2::int IS NULL AND $4::text[] IS NULL AND $5::date[] IS NULL
)"""


#: Per grouping: the table of every territory (zeros where there is no offer), its columns.
_TERRITORIES: dict[Grouping, tuple[str, str]] = {
    "department": ("departments", "t.code AS department, t.name, t.region_code"),
    "authority": ("authorities", "t.code AS authority, t.name, t.kind, t.departments"),
}


def _query(with_requests: bool, key: Grouping = "department") -> str:
    table, columns = _TERRITORIES[key]
    parts = [_UNITS, _CARERS, _REQUESTS if with_requests else _NO_REQUESTS]
    ctes = ",\n         ".join(part.format(key=key, free=carer_free_sql("c")) for part in parts)
    return f"""
    WITH {ctes}
    SELECT {columns},
           coalesce(u.units, 0) AS units,
           coalesce(u.undeclared_units, 0) AS undeclared_units,
           coalesce(u.installed, 0) AS installed,
           coalesce(u.occupied, 0) AS occupied,
           coalesce(u.reserved, 0) AS reserved,
           coalesce(u.available, 0) AS available,
           coalesce(u.closed, 0) AS closed,
           coalesce(u.additional, 0) AS additional,
           coalesce(u.available_h24, 0) AS available_h24,
           coalesce(u.available_h48, 0) AS available_h48,
           coalesce(u.available_d7, 0) AS available_d7,
           coalesce(f.carers, 0) AS carers,
           coalesce(f.carers_active, 0) AS carers_active,
           coalesce(f.carer_places_available, 0) AS carer_places_available,
           coalesce(r.requests_waiting, 0) AS requests_waiting,
           coalesce(r.children_waiting, 0) AS children_waiting,
           r.oldest_waiting_days,
           coalesce(r.measures_not_executed, 0) AS measures_not_executed,
           coalesce(u.declarations, 0) + coalesce(f.carers_active, 0) AS declarations,
           coalesce(u.stale_declarations, 0) + coalesce(f.carer_stale, 0)
               AS stale_declarations,
           coalesce(u.open_places, 0) + coalesce(f.carer_open_places, 0) AS open_places
      FROM {table} t
      LEFT JOIN units_agg u ON u.code = t.code
      LEFT JOIN carers_agg f ON f.code = t.code
      LEFT JOIN requests_agg r ON r.code = t.code
     WHERE ($3::text IS NULL OR t.code = $3)
     ORDER BY t.code
    """


async def has_requests_table(conn: asyncpg.Connection) -> bool:
    """The workflow's table arrives with migration 0002; before it, nobody waits."""
    return bool(await conn.fetchval("SELECT to_regclass('placement_requests') IS NOT NULL"))


WAITING_FIELDS = (
    "requests_waiting",
    "children_waiting",
    "oldest_waiting_days",
    "measures_not_executed",
)
"""Figures of requests and children: exact only for the authority's own services; the
national views leave them null (``national_view``)."""


def tension(row: dict[str, Any], with_waiting: bool = True) -> float | None:
    """See ``api.stats.schemas``: occupancy plus the waiting list, relative to open places.
    Without the waiting list (``with_waiting=False``, the national views): the occupancy
    alone, which tells nothing of ``children_waiting``."""
    open_places = row["open_places"]
    if open_places <= 0:
        return None
    free = row["available"] + row["carer_places_available"]
    waiting = row["children_waiting"] if with_waiting else 0
    return round((open_places - free + waiting) / open_places, 3)


def national_view(item: dict[str, Any]) -> dict[str, Any]:
    """A row (or the totals) as a national view publishes it (issue #18, statistical
    secrecy): the figures of requests and children (``WAITING_FIELDS``) null — counted by
    child and published with secrecy by ``GET /v1/stats/children`` only, so that no exact
    count here can give away a cell hidden there — and the tension without the waiting list
    (its occupancy part), since with ``open_places`` and the free places published the full
    tension would give ``children_waiting`` back (docs/domain.md, "Statistics")."""
    return {
        **item,
        **dict.fromkeys(WAITING_FIELDS),
        "tension": tension(item, with_waiting=False),
    }


async def _stats(
    conn: asyncpg.Connection,
    key: Grouping,
    stale_after_days: int,
    unexecuted_after_days: int,
    code: str | None,
) -> list[dict[str, Any]]:
    with_requests = await has_requests_table(conn)
    codes = [r["code"] for r in await conn.fetch("SELECT code FROM departments")]
    todays = [local_today(c) for c in codes]
    rows = await conn.fetch(
        _query(with_requests, key),
        stale_after_days,
        unexecuted_after_days if with_requests else None,
        code,
        codes if with_requests else None,
        todays if with_requests else None,
    )
    out = []
    for row in rows:
        item = {k: (int(v) if k in COUNT_FIELDS else v) for k, v in dict(row).items()}
        item["tension"] = tension(item)
        out.append(item)
    return out


async def department_stats(
    conn: asyncpg.Connection,
    stale_after_days: int,
    unexecuted_after_days: int,
    department: str | None = None,
) -> list[dict[str, Any]]:
    """One row per department (all of them, zeros where there is no offer)."""
    return await _stats(conn, "department", stale_after_days, unexecuted_after_days, department)


async def authority_stats(
    conn: asyncpg.Connection,
    stale_after_days: int,
    unexecuted_after_days: int,
    authority: str | None = None,
) -> list[dict[str, Any]]:
    """One row per competent authority (all of them, zeros where there is no offer), in the
    referential's order (department order: …, 19, 20R, 21, …, 66, 6AE, 69D, 69M, 70, …)."""
    items = await _stats(conn, "authority", stale_after_days, unexecuted_after_days, authority)
    order = {code: i for i, code in enumerate(load_authorities())}
    items.sort(key=lambda item: (order.get(item["authority"], len(order)), item["authority"]))
    return items


def national_totals(items: list[dict[str, Any]], **identity: Any) -> dict[str, Any]:
    """The figures summed over ``items`` (a view's rows), under ``identity`` (the view's key
    columns for the whole country; by default the departments' ``FR``)."""
    totals: dict[str, Any] = {name: sum(i[name] for i in items) for name in COUNT_FIELDS}
    waiting_days = [i["oldest_waiting_days"] for i in items if i["oldest_waiting_days"] is not None]
    totals.update(
        identity or {"department": "FR", "name": "France entière", "region_code": ""},
        oldest_waiting_days=max(waiting_days) if waiting_days else None,
    )
    totals["tension"] = tension(totals)
    return totals


_HISTORY = """
WITH bounds AS (
    SELECT ($2::date::timestamp AT TIME ZONE $3) AS start, $2::date AS start_day,
           $4::date AS end_day
),
unit_scope AS (
    SELECT u.id FROM units u JOIN structures s ON s.id = u.structure_id
     WHERE ($1::text IS NULL OR s.department = $1)
       AND ($5::text IS NULL OR s.authority = $5)
),
unit_points AS (
    -- each unit's last declaration before the window, then every declaration in it
    SELECT sc.id AS key, b.start - interval '1 microsecond' AS at, 0::bigint AS seq,
           last.available AS value
      FROM unit_scope sc CROSS JOIN bounds b
     CROSS JOIN LATERAL (
           SELECT cd.available FROM capacity_declarations cd
            WHERE cd.unit_id = sc.id AND cd.temporality = 'current' AND cd.declared_at < b.start
            ORDER BY cd.declared_at DESC, cd.id DESC LIMIT 1) last
    UNION ALL
    SELECT cd.unit_id, cd.declared_at, cd.id, cd.available
      FROM capacity_declarations cd JOIN unit_scope sc ON sc.id = cd.unit_id, bounds b
     WHERE cd.temporality = 'current' AND cd.declared_at >= b.start
),
carer_scope AS (
    SELECT id FROM foster_carers
     WHERE ($1::text IS NULL OR department = $1)
       AND ($5::text IS NULL OR authority = $5)
),
carer_points AS (
    SELECT sc.id AS key, b.start - interval '1 microsecond' AS at, 0::bigint AS seq,
           last.value
      FROM carer_scope sc CROSS JOIN bounds b
     CROSS JOIN LATERAL (
           SELECT CASE WHEN cd.status = 'active' THEN cd.available_places ELSE 0 END AS value
             FROM carer_declarations cd
            WHERE cd.carer_id = sc.id AND cd.declared_at < b.start
            ORDER BY cd.declared_at DESC, cd.id DESC LIMIT 1) last
    UNION ALL
    SELECT cd.carer_id, cd.declared_at, cd.id,
           CASE WHEN cd.status = 'active' THEN cd.available_places ELSE 0 END
      FROM carer_declarations cd JOIN carer_scope sc ON sc.id = cd.carer_id, bounds b
     WHERE cd.declared_at >= b.start
),
deltas AS (
    SELECT 'unit' AS kind, at,
           value - coalesce(lag(value) OVER (PARTITION BY key ORDER BY at, seq), 0) AS delta
      FROM unit_points
    UNION ALL
    SELECT 'carer', at,
           value - coalesce(lag(value) OVER (PARTITION BY key ORDER BY at, seq), 0)
      FROM carer_points
),
daily AS (
    SELECT greatest((d.at AT TIME ZONE $3)::date, b.start_day) AS day,
           sum(delta) FILTER (WHERE kind = 'unit') AS unit_delta,
           sum(delta) FILTER (WHERE kind = 'carer') AS carer_delta
      FROM deltas d, bounds b
     GROUP BY 1
)
SELECT g.day::date AS day,
       sum(coalesce(daily.unit_delta, 0)) OVER (ORDER BY g.day) AS unit_places_available,
       sum(coalesce(daily.carer_delta, 0)) OVER (ORDER BY g.day) AS carer_places_available
  FROM bounds b
 CROSS JOIN generate_series(b.start_day, b.end_day, interval '1 day') AS g(day)
  LEFT JOIN daily ON daily.day = g.day::date
 ORDER BY g.day
"""


def calendar_department(department: str | None, authority: str | None) -> str | None:
    """The department whose calendar buckets a history: the one asked for, or the first of
    the authority's (an authority's departments share one time zone), or None (Paris)."""
    if authority is not None:
        return load_authorities()[authority].departments[0]
    return department


async def history(
    conn: asyncpg.Connection, department: str | None, days: int, authority: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Free places at the end of each of the last ``days`` days (today: now), over the
    units and carers of ``department`` or of ``authority`` (by their ``authority`` column),
    or of the whole country.

    Each declaration contributes its change from the previous one of the same unit (or
    carer), so the series is a running sum over the window's declarations plus each one's
    last value before the window: history rows are read once, through the per-unit index,
    never replayed day by day.
    """
    calendar = calendar_department(department, authority)
    timezone = TIMEZONES.get(calendar or "", "Europe/Paris")
    today: date = local_today(calendar)
    start = date.fromordinal(today.toordinal() - days + 1)
    rows = await conn.fetch(_HISTORY, department, start, timezone, today, authority)
    items = [
        {
            "day": r["day"],
            "unit_places_available": int(r["unit_places_available"]),
            "carer_places_available": int(r["carer_places_available"]),
            "available": int(r["unit_places_available"]) + int(r["carer_places_available"]),
        }
        for r in rows
    ]
    return timezone, items
