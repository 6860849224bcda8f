"""The offer over time and the freshness of what it rests on (issue #18). Glossary:
docs/domain.md, "Offer over time, declaration coverage".

**Offer by category, month by month.** For each FINESS category of establishment (carers
apart, as ``carer``) and each month: the open and free places at the end of the month, from
the declaration history (``capacity_declarations`` ``current``, ``carer_declarations``) —
each unit's (carer's) last declaration before the instant. As in ``repository.history``,
every declaration contributes its change from the previous one of the same unit (carer), so
the history is read once, bucketed by month, and summed — never replayed point by point.
The last point is *now*, read from the current state (snapshots and carers' rows), which is
what the history's last declarations say.

Why a cache: the history is append-only and ``declared_at`` is the time of the write, so
the state at the end of a month that is over never changes. The closed months of a series
are computed once per process and scope (authority or nation) and kept; only the current
month is read on each call. (Rows written with a past ``declared_at`` by hand are not seen
until the process restarts; the seed's, which truncates first, are.)

**Coverage and freshness per authority.** Share of the units and of the carers whose agrément
is valid today that declared in the last ``days`` days; the latest declaration and its age.
No declarations is not the same as no tension: an authority whose coverage is below
``min_coverage`` gets ``tension`` null with the reason ``declarations_stale`` (and
``no_declarations`` when nothing was ever declared, ``no_offer`` without open places).
"""

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from api.capacity.repository import agrement_valid_sql, carer_free_sql
from api.stats.repository import tension as tension_of

PARIS = ZoneInfo("Europe/Paris")
CARER = "carer"
"""The category of assistants familiaux in the series (they have no FINESS category)."""

_HISTORY = """
WITH unit_scope AS (
    SELECT u.id, s.authority, s.category FROM units u JOIN structures s ON s.id = u.structure_id
     WHERE ($3::text IS NULL OR s.authority = $3)
),
carer_scope AS (
    SELECT id, authority, agrement_capacity FROM foster_carers
     WHERE ($3::text IS NULL OR authority = $3)
),
points AS (
    -- each unit's last declaration before the series, then every one inside it
    SELECT sc.id AS key, sc.authority, sc.category,
           $1::timestamptz - interval '1 microsecond' AS at,
           0::bigint AS seq, last.available AS free, last.open
      FROM unit_scope sc
     CROSS JOIN LATERAL (
           SELECT cd.available, cd.installed + cd.additional - cd.closed AS open
             FROM capacity_declarations cd
            WHERE cd.unit_id = sc.id AND cd.temporality = 'current' AND cd.declared_at < $1
            ORDER BY cd.declared_at DESC, cd.id DESC LIMIT 1) last
    UNION ALL
    SELECT cd.unit_id, sc.authority, sc.category, cd.declared_at, cd.id, cd.available,
           cd.installed + cd.additional - cd.closed
      FROM capacity_declarations cd JOIN unit_scope sc ON sc.id = cd.unit_id
     WHERE cd.temporality = 'current' AND cd.declared_at >= $1 AND cd.declared_at < $4
    UNION ALL
    SELECT sc.id, sc.authority, 'carer', $1::timestamptz - interval '1 microsecond', 0::bigint,
           last.free, last.open
      FROM carer_scope sc
     CROSS JOIN LATERAL (
           SELECT CASE WHEN cd.status = 'active' THEN cd.available_places ELSE 0 END AS free,
                  CASE WHEN cd.status = 'active' THEN sc.agrement_capacity ELSE 0 END AS open
             FROM carer_declarations cd
            WHERE cd.carer_id = sc.id AND cd.declared_at < $1
            ORDER BY cd.declared_at DESC, cd.id DESC LIMIT 1) last
    UNION ALL
    SELECT cd.carer_id, sc.authority, 'carer', cd.declared_at, cd.id,
           CASE WHEN cd.status = 'active' THEN cd.available_places ELSE 0 END,
           CASE WHEN cd.status = 'active' THEN sc.agrement_capacity ELSE 0 END
      FROM carer_declarations cd JOIN carer_scope sc ON sc.id = cd.carer_id
     WHERE cd.declared_at >= $1 AND cd.declared_at < $4
),
deltas AS (
    SELECT authority, category, at,
           free - coalesce(lag(free) OVER w, 0) AS d_free,
           open - coalesce(lag(open) OVER w, 0) AS d_open
      FROM points
    WINDOW w AS (PARTITION BY key ORDER BY at, seq)
),
sums AS (
    -- bucket i: the declarations before the i-th month end and not before the previous one
    SELECT authority, category, width_bucket(at, $2::timestamptz[]) + 1 AS i,
           sum(d_free) AS d_free, sum(d_open) AS d_open
      FROM deltas GROUP BY 1, 2, 3
)
SELECT c.authority, c.category, g.i,
       sum(coalesce(s.d_free, 0)) OVER w AS free,
       sum(coalesce(s.d_open, 0)) OVER w AS open
  FROM (SELECT DISTINCT authority, category FROM sums) c
 CROSS JOIN generate_series(1, cardinality($2::timestamptz[])) AS g(i)
  LEFT JOIN sums s ON s.authority = c.authority AND s.category = c.category AND s.i = g.i
WINDOW w AS (PARTITION BY c.authority, c.category ORDER BY g.i)
"""

_NOW = """
SELECT s.category, sum(c.available) AS free,
       sum(c.installed + c.additional - c.closed) AS open
  FROM capacity_snapshots c
  JOIN units u ON u.id = c.unit_id
  JOIN structures s ON s.id = u.structure_id
 WHERE c.temporality = 'current' AND ($1::text IS NULL OR s.authority = $1)
 GROUP BY s.category
UNION ALL
SELECT 'carer',
       coalesce(sum(available_places) FILTER (WHERE status = 'active'), 0),
       coalesce(sum(agrement_capacity) FILTER (WHERE status = 'active'), 0)
  FROM foster_carers
 WHERE ($1::text IS NULL OR authority = $1)
HAVING count(*) > 0
"""

Closed = dict[tuple[str, str, int], tuple[int, int]]
"""(authority, category, month index) → (free, open) at the end of that closed month."""
_CACHE: dict[tuple[str | None, tuple[datetime, ...], tuple[int, ...]], Closed] = {}
_GENERATION = """
SELECT ARRAY[(SELECT relfilenode FROM pg_class WHERE oid = 'capacity_declarations'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'carer_declarations'::regclass)]
"""
"""Part of the cache's key: the history tables' storage, which a TRUNCATE renews (``places
seed --replace`` while the service runs, or another database) — a past never rewritten
otherwise."""
_CACHE_SIZE = 512


def month_ends(today: date, months: int) -> list[tuple[str, datetime]]:
    """The closed months of a series of ``months`` ending with the current one: each month's
    label (YYYY-MM) and its end (the first instant of the next month, Paris)."""
    out = []
    for k in range(months - 1, 0, -1):
        year, month = divmod(today.year * 12 + today.month - 1 - k, 12)
        next_year, next_month = divmod(year * 12 + month + 1, 12)
        end = datetime.combine(date(next_year, next_month + 1, 1), time(), PARIS)
        out.append((f"{year:04d}-{month + 1:02d}", end))
    return out


def occupancy(free: int, open_places: int) -> float | None:
    """Tension of a category: 1 − free / open places (null without open places)."""
    return None if open_places <= 0 else round(1 - free / open_places, 3)


async def closed_months(
    conn: asyncpg.Connection, authority: str | None, ends: list[datetime]
) -> Closed:
    """Free and open places per authority and category at each of ``ends`` (month ends in
    the past), cached (see the module's docstring)."""
    if not ends:
        return {}
    tables = tuple(await conn.fetchval(_GENERATION))
    key = (authority, tuple(ends), tables)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    rows = await conn.fetch(_HISTORY, month_start(ends[0]), ends, authority, ends[-1])
    result = {
        (r["authority"], r["category"], r["i"] - 1): (int(r["free"]), int(r["open"])) for r in rows
    }
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = result
    return result


def month_start(end: datetime) -> datetime:
    """The first instant of the month that ``end`` closes."""
    year, month = divmod(end.year * 12 + end.month - 2, 12)
    return datetime.combine(date(year, month + 1, 1), time(), PARIS)


async def series(
    conn: asyncpg.Connection, today: date, months: int, authority: str | None = None
) -> list[dict[str, Any]]:
    """Per month (oldest first; the last is the current month, as of now): per category,
    ``free`` and ``open`` places and ``tension`` (``occupancy``)."""
    closed = month_ends(today, months)
    ends = [end for _, end in closed]
    closed_figures = await closed_months(conn, authority, ends)
    history: dict[tuple[str, int], tuple[int, int]] = {}
    for (_, category, i), (free, open_places) in closed_figures.items():
        was = history.get((category, i), (0, 0))
        history[(category, i)] = (was[0] + free, was[1] + open_places)
    now = {
        r["category"]: (int(r["free"]), int(r["open"])) for r in await conn.fetch(_NOW, authority)
    }
    categories = sorted({c for c, _ in history} | set(now), key=lambda c: (c == CARER, c))
    labels = [label for label, _ in closed] + [f"{today.year:04d}-{today.month:02d}"]
    out = []
    for i, label in enumerate(labels):
        figures = {}
        for category in categories:
            free, open_places = (
                now.get(category, (0, 0))
                if i == len(closed)
                else history.get((category, i), (0, 0))
            )
            figures[category] = {
                "free": free,
                "open": open_places,
                "tension": occupancy(free, open_places),
            }
        out.append({"month": label, "current": i == len(closed), "categories": figures})
    return out


_COVERAGE = f"""
WITH units_agg AS (
    SELECT s.authority,
           count(*) AS units,
           count(c.unit_id) AS units_declared,
           count(*) FILTER (WHERE c.declared_at >= now() - make_interval(days => $1))
               AS units_recent,
           max(c.declared_at) AS units_latest,
           -- the tension's terms, as in repository (one formula: repository.tension)
           coalesce(sum(c.available), 0) AS available,
           sum(CASE WHEN c.unit_id IS NULL THEN u.installed
                    ELSE c.installed + c.additional - c.closed END) AS open_places
      FROM units u
      JOIN structures s ON s.id = u.structure_id
      LEFT JOIN capacity_snapshots c ON c.unit_id = u.id AND c.temporality = 'current'
     GROUP BY s.authority
),
carers_agg AS (
    SELECT c.authority,
           count(*) AS carers,
           count(*) FILTER (WHERE c.declared_at >= now() - make_interval(days => $1))
               AS carers_recent,
           max(c.declared_at) AS carers_latest,
           coalesce(sum(c.available_places) FILTER (WHERE {carer_free_sql("c")}), 0)
               AS carer_places_available,
           coalesce(sum(c.agrement_capacity) FILTER (WHERE {carer_free_sql("c")}), 0)
               AS open_places
      FROM foster_carers c
     WHERE {agrement_valid_sql("c")}
     GROUP BY c.authority
),
requests_agg AS (
    SELECT authority, sum(jsonb_array_length(children)) AS children_waiting
      FROM placement_requests WHERE status = 'waiting'
     GROUP BY authority
)
SELECT a.code AS authority,
       coalesce(u.units, 0) AS units, coalesce(u.units_declared, 0) AS units_declared,
       coalesce(u.units_recent, 0) AS units_recent,
       coalesce(f.carers, 0) AS carers, coalesce(f.carers_recent, 0) AS carers_recent,
       greatest(u.units_latest, f.carers_latest) AS latest_declaration,
       coalesce(u.available, 0)::int AS available,
       coalesce(f.carer_places_available, 0)::int AS carer_places_available,
       (coalesce(u.open_places, 0) + coalesce(f.open_places, 0))::int AS open_places,
       coalesce(r.children_waiting, 0)::int AS children_waiting
  FROM authorities a
  LEFT JOIN units_agg u ON u.authority = a.code
  LEFT JOIN carers_agg f ON f.authority = a.code
  LEFT JOIN requests_agg r ON r.authority = a.code
 WHERE $2::text IS NULL OR a.code = $2
 ORDER BY a.code
"""


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 3)


async def coverage(
    conn: asyncpg.Connection, days: int, authority: str | None = None, exact: bool = False
) -> dict[str, dict[str, Any]]:
    """Per authority: units and valid carers, how many declared in the last ``days`` days,
    the shares, the latest declaration and its age in days; the tension as
    ``/v1/stats/authorities`` gives it — with the waiting list only when ``exact`` (the
    authority's own services), else its occupancy part (statistical secrecy: with the
    authorities' published places, the full tension would give the children waiting back)."""
    now = datetime.now(PARIS)
    out = {}
    for r in await conn.fetch(_COVERAGE, days, authority):
        latest = r["latest_declaration"]
        out[r["authority"]] = {
            "authority": r["authority"],
            "units": r["units"],
            "units_declared": r["units_declared"],
            "units_recent": r["units_recent"],
            "carers": r["carers"],
            "carers_recent": r["carers_recent"],
            "units_coverage": _share(r["units_recent"], r["units"]),
            "carers_coverage": _share(r["carers_recent"], r["carers"]),
            "coverage": _share(r["units_recent"] + r["carers_recent"], r["units"] + r["carers"]),
            "latest_declaration": latest,
            "latest_age_days": None if latest is None else (now - latest).days,
            "open_places": r["open_places"],
            "tension": tension_of(dict(r), with_waiting=exact),
        }
    return out


def with_tension(item: dict[str, Any], min_coverage: float) -> dict[str, Any]:
    """The authority's tension (``repository.tension``, as in ``/v1/stats/authorities``)
    unless its declarations cannot carry it: null with ``tension_reason`` ``no_offer``
    (no unit nor valid carer, or no open place), ``no_declarations`` (an offer that never
    declared) or ``declarations_stale`` (coverage below ``min_coverage``)."""
    reason = None
    if item["units"] + item["carers"] == 0 or item["open_places"] <= 0:
        reason = "no_offer"
    elif item["latest_declaration"] is None:
        reason = "no_declarations"
    elif item["coverage"] is not None and item["coverage"] < min_coverage:
        reason = "declarations_stale"
    figures = {k: v for k, v in item.items() if k != "open_places"}
    return {**figures, "tension": None if reason else item["tension"], "tension_reason": reason}
