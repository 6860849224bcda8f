"""The search's step queries before the in-memory index (#16): one SQL query per kind and
ladder step, as ``api.search.repository`` ran them until migration 0023. Kept here as the
oracle that ``tests/test_offer_index.py`` checks the index against: the index must return
what these return (same hard filters, same geography, same order and limit).

The ``origin`` CTE is ``NOT MATERIALIZED`` so ``<->`` compares with a constant the GiST index
can order by; ``FETCH FIRST … WITH TIES`` keeps the ties at a LIMIT's cut whole, cut by the
outer query's total order (distance, id, temporality).
"""

import importlib
from typing import Any

import asyncpg

from api.capacity.repository import carer_free_sql
from api.precision import rounded_km_sql
from api.search.repository import CANDIDATES_PER_KIND, Origin, offer_from_row
from matching import Area, Need, Offer, Step

ORACLE_INDEXES: dict[str, str] = importlib.import_module(
    "api.migrations.versions.0023_offer_changes"
).SEARCH_INDEXES
"""The indexes these queries walked, which migration 0023 dropped with them from the schema
(nothing else reads by them): the oracle's database gets them back, or each of its queries
would sort every free place of the country."""


async def create_oracle_indexes(conn: asyncpg.Connection) -> None:
    """The step queries' indexes in ``conn``'s database (a test database of its own)."""
    for name, definition in ORACLE_INDEXES.items():
        await conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    await conn.execute("ANALYZE capacity_snapshots, foster_carers")


_GEO_FILTER = {
    Area.RADIUS: "AND ST_DWithin({loc}, origin.g, ${r}, false)",
    # Either side from its own index (BitmapOr): the radius from the GiST, the departments
    # from their B-tree (0021) — an OR no single index serves read every free place before.
    Area.NEIGHBOURS: "AND (ST_DWithin({loc}, origin.g, ${r}, false) OR {dept} = ANY(${d}::text[]))",
    Area.NATIONAL: "",
}

UNITS_SQL = """
WITH origin AS NOT MATERIALIZED (
    SELECT ST_SetSRID(ST_MakePoint(($1::float8[])[2], ($1::float8[])[1]), 4326)::geography AS g
), nearest AS (
    -- Free places nearest first: a KNN walk of the snapshots' partial GiST index that stops
    -- at the LIMIT. Each snapshot carries its unit's and structure's columns (0021): the
    -- need is checked on the row itself, and nothing is joined.
    SELECT cs.*, cs.location <-> origin.g AS knn
      FROM origin, capacity_snapshots cs
     WHERE cs.available > 0  -- lets the planner use the partial indexes of free places
       AND {temporality}
       AND cs.available >= $3
       AND cs.timings @> ARRAY[($4::text[])[1]] AND cs.publics @> ARRAY[($4::text[])[2]]
       AND cs.formulas @> ARRAY[($4::text[])[3]]
       AND cs.age_min_months <= $5 AND cs.age_max_months >= $6
       AND cs.sexes && $7::text[] AND cs.sexes @> $8::text[]
       AND {disability}
       {geo}{min}
     ORDER BY cs.location <-> origin.g  -- distance alone, so the index yields the order
     FETCH FIRST $10 ROWS WITH TIES  -- units of one structure share its point: no arbitrary cut
)
-- A lieu de vie (api.precision) leaves this module at its commune: its snapshot's point is
-- the commune's (0011), and the distance to it is rounded to the kilometre.
SELECT n.unit_id::text AS id, n.structure_id::text AS structure_id,
       n.structure_name, n.finess, n.category, n.department, n.commune,
       n.age_min_months, n.age_max_months, n.sexes, n.timings, n.publics, n.formulas,
       n.disability_specialised, n.disability_supported,
       n.temporality, n.available AS free_places, n.available_gender,
       extract(epoch FROM now() - n.declared_at) / 86400.0 AS declared_age_days,
       {distance_km} AS distance_km,
       ST_Y(n.location::geometry) AS lat, ST_X(n.location::geometry) AS lon,
       n.knn, n.knn AS metres
  FROM nearest n
 ORDER BY n.knn, n.unit_id, n.temporality
 LIMIT $10
"""

_CARER_BRANCH = """
    SELECT c.id, c.department, c.commune, c.preferred_age_min_months AS age_min_months,
           c.preferred_age_max_months AS age_max_months, c.preferred_timings AS timings,
           c.preferred_publics AS publics, c.preferred_formulas AS formulas,
           c.disability_specialised, c.disability_supported, c.available_places, c.declared_at,
           c.public_location <-> origin.g AS knn, c.public_location <-> origin.g AS metres,
           ST_Y(c.public_location::geometry) AS lat, ST_X(c.public_location::geometry) AS lon
      FROM origin, foster_carers c
     WHERE c.available_places > 0  -- implies the partial indexes' predicates
       AND {whose}
       AND {free}
       AND c.available_places >= $2
       AND c.preferred_timings @> ARRAY[($3::text[])[1]]
       AND c.preferred_publics @> ARRAY[($3::text[])[2]]
       AND c.preferred_formulas @> ARRAY[($3::text[])[3]]
       AND c.preferred_age_min_months <= $4 AND c.preferred_age_max_months >= $5
       AND {disability}
       {geo}{min}
     {order}
"""
_KNN_ORDER = "ORDER BY c.public_location <-> origin.g FETCH FIRST $7 ROWS WITH TIES"
"""The open carers: a KNN walk of their GiST index, which orders by the distance alone (the
ties, carers of one commune, kept whole and cut by the outer order)."""
_SORT_ORDER = "ORDER BY c.public_location <-> origin.g, c.id LIMIT $7"
"""The searcher's own closed carers: read by employing authority (a B-tree) and sorted."""

CARERS_SQL = (
    """
WITH origin AS NOT MATERIALIZED (
    SELECT ST_SetSRID(ST_MakePoint(($1::float8[])[2], ($1::float8[])[1]), 4326)::geography AS g
), nearest AS (
    -- The carer's preferences (within the agrément) are what they are matched on. Whom a
    -- carer may be proposed to (carer_open_to_sql: employed by the searching authority, or
    -- opened by their employer to others) is read as two disjoint sets, each from its own
    -- index (0016): the open carers nearest first (KNN walk of their partial GiST index),
    -- and the searcher's own closed carers (a department's few hundred, by authority).
    -- Carers of one commune share its public point, so the id breaks ties and the LIMIT's
    -- cut is deterministic.
    SELECT * FROM (("""
    + _CARER_BRANCH.replace("{whose}", "c.open_to_other_authorities").replace("{order}", _KNN_ORDER)
    + ") UNION ALL ("
    + _CARER_BRANCH.replace(
        "{whose}", "NOT c.open_to_other_authorities AND c.employing_authority = $8"
    ).replace("{order}", _SORT_ORDER)
    + """)) AS both_sets
     ORDER BY knn, id
     LIMIT $7
)
-- The public point is the commune's: lat/lon and the distance, rounded to the kilometre.
SELECT n.id::text AS id, n.department, n.commune, n.age_min_months, n.age_max_months,
       n.timings, n.publics, n.formulas,
       n.disability_specialised, n.disability_supported, n.available_places AS free_places,
       extract(epoch FROM now() - n.declared_at) / 86400.0 AS declared_age_days,
       round((n.metres / 1000.0)::numeric)::float8 AS distance_km,
       n.lat, n.lon, n.knn, n.metres
  FROM nearest n
 ORDER BY n.knn, n.id
"""
)


_GEO_PARAMS = {Area.RADIUS: 1, Area.NEIGHBOURS: 2, Area.NATIONAL: 0}

DISABILITY_FILTER = {
    # Every profile of the children has a word (either level); always true without profiles.
    "stated": "({t}.disability_specialised || {t}.disability_supported) @> ${p}::text[]",
    # Silent on at least one of them: the complement, read only when the stated are short.
    "unstated": "NOT ({t}.disability_specialised || {t}.disability_supported) @> ${p}::text[]",
}
_PROFILES_PARAM = {"unit": ("cs", 9), "carer": ("c", 6)}


def _sql(
    template: str,
    area: str,
    loc: str,
    dept: str,
    first_geo_param: int,
    away: bool = False,
    kind: str = "unit",
    disability: str = "stated",
    now: bool = False,
) -> str:
    """``now``: the units' query of places free now only (``_TEMPORALITY``). ``away``: a
    minimum distance from the family (``Need.min_distance_km``, #16), its metres the last
    parameter — the KNN walk skips the nearer rows instead of returning them to be dropped,
    so the LIMIT is spent on places the order allows."""
    geo = _GEO_FILTER[Area(area)].format(
        loc=loc, dept=dept, r=first_geo_param, d=first_geo_param + 1
    )
    last = first_geo_param + _GEO_PARAMS[Area(area)]
    return template.format(
        geo=geo,
        min=f"\n       AND NOT ST_DWithin({loc}, origin.g, ${last}, false)" if away else "",
        temporality=_TEMPORALITY[now],
        distance_km=rounded_km_sql("n.category", "n.knn"),
        free=carer_free_sql("c"),
        disability=DISABILITY_FILTER[disability].format(
            t=_PROFILES_PARAM[kind][0], p=_PROFILES_PARAM[kind][1]
        ),
    )


_TEMPORALITY = {
    False: "cs.temporality = ANY($2::text[])",
    # Places free now: the literal lets the planner use the partial GiST index of places
    # free now (0021), which holds a third of the free snapshots; with ``= ANY($2)`` it
    # intersected the GiST with a scan of the primary key's every "current" entry instead
    # (EXPLAIN at scale 4: 1,119 → 494 buffers for a Paris radius).
    True: "cs.temporality = 'current' AND $2::text[] = ARRAY['current']",
}

QUERIES: dict[tuple[str, str, str, bool], str] = {}
AWAY_QUERIES: dict[tuple[str, str, str, bool], str] = {}
"""Keyed by (kind, area, ``DISABILITY_FILTER`` key, places free now only)."""
for _area in Area:
    for _which in DISABILITY_FILTER:
        for _away, _into in ((False, QUERIES), (True, AWAY_QUERIES)):
            for _now in (False, True):
                _into[("unit", _area, _which, _now)] = _sql(
                    UNITS_SQL,
                    _area,
                    "cs.location",
                    "cs.department",
                    11,
                    _away,
                    "unit",
                    _which,
                    _now,
                )
            _into[("carer", _area, _which, False)] = _sql(
                CARERS_SQL, _area, "c.public_location", "c.department", 9, _away, "carer", _which
            )


def query_args(
    kind: str,
    need: Need,
    origin: Origin,
    step: Step,
    neighbours: list[str],
    limit: int = CANDIDATES_PER_KIND,
) -> list[Any]:
    """Parameters of one query, in ``$n`` order. A whole group needs every child accepted by
    one offer; at the split step an offer qualifies if it can take at least one child."""
    ages = [c.age_months for c in need.children]
    # An expected child (Need.parent_expecting) has no sex yet: either will do.
    sexes = sorted({c.sex for c in need.children if not c.expected}) or ["F", "M"]
    needs = [need.timing, need.public, need.formula]
    if step.split_siblings:
        places, age_lo, age_hi = 1, max(ages), min(ages)  # band overlaps the group's span
        all_sexes: list[str] = []
        profiles: list[str] = []
    else:
        places, age_lo, age_hi = need.size, min(ages), max(ages)
        all_sexes = sorted({c.sex for c in need.children if not c.expected})
        profiles = sorted({p for c in need.children for p in c.disability_profiles})
    point = [origin.lat, origin.lon]
    if kind == "unit":
        args: list[Any] = [
            point,
            sorted(step.temporalities),
            places,
            needs,
            age_lo,
            age_hi,
            sexes,
            all_sexes,
            profiles,
            limit,
        ]
    else:  # carers declare "current" only and accept either sex
        args = [
            point,
            places,
            needs,
            age_lo,
            age_hi,
            profiles,
            limit,
            origin.searcher,
        ]
    if step.area != Area.NATIONAL:
        assert step.radius_km is not None
        args.append(step.radius_km * 1000.0)
    if step.area == Area.NEIGHBOURS:
        args.append([origin.department, *neighbours])
    if need.min_distance_km is not None:
        args.append(need.min_distance_km * 1000.0)
    return args


async def step_offers(
    conn: asyncpg.Connection,
    kind: str,
    need: Need,
    origin: Origin,
    step: Step,
    neighbours: list[str],
    disability: str = "stated",
    limit: int = CANDIDATES_PER_KIND,
) -> list[Offer]:
    """What the step's query of ``kind`` returns (``disability``: ``stated`` or ``unstated``)."""
    args = query_args(kind, need, origin, step, neighbours, limit)
    queries = AWAY_QUERIES if need.min_distance_km is not None else QUERIES
    now = kind == "unit" and args[1] == ["current"]
    sql = queries[(kind, step.area, disability, now)]
    return [offer_from_row(kind, r) for r in await conn.fetch(sql, *args)]
