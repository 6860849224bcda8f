"""Candidate retrieval: one index-assisted query per kind (units, carers) and ladder step.

Hard filters (free places for the temporalities counted, the need's timing, public and
formula — one ``text[]`` parameter of three codes —, age band in months, sexes; for a
carer: agrément valid today and not on leave today — the one
predicate ``api.capacity.repository.carer_free_sql`` —, their preferences rather than the
agrément's bounds, and the employer's openness to the searching authority) are pushed into
SQL; geography is ``ST_DWithin`` on
``geography`` (radius steps), plus the origin's and neighbouring departments (neighbour
step), or nothing (national); rows come nearest first through the GiST KNN operator
``<->`` with a LIMIT, so a national step never scans the country. matching/ re-checks
every hard constraint anyway.

The ``origin`` CTE is ``NOT MATERIALIZED``: referenced twice, PostgreSQL would otherwise
materialise it, and ``location <-> origin.g`` would compare with a column rather than a
constant — which no index can order by, so every "nearest first" read became a scan of the
country's free offer and a sort (measured with EXPLAIN at scales 1 and 4, #16: 2,700 buffers
at scale 1, 5,600 at scale 4 for a national read of a common need). The LIMITs inside are
``FETCH FIRST … WITH TIES`` on the distance alone, which the index yields: places of one
structure (or carers of one commune) share a point, and the ties are then cut by the outer
query's total order (distance, id), so the rows returned never depend on the index's order
among equals.

Disability profiles are graded (#16, ``matching.disability``): an offer with a word on each
of the children's profiles (specialised or with support) ranks, at its step, before any
offer silent on one, which is admissible only as a stated relaxation. Each step's query
therefore reads the offers *with a word* (``DISABILITY_FILTER['stated']``: the profiles are
a subset of the two levels' union); only when they are fewer than the search's limit does
it read the *silent* ones too (``'unstated'``, the complement) — so a profile that many
offers state costs one query per step, as before, and one that few state finds the silent
offers near the family instead of nothing.

A carer's home is never read here: every use of their position — radius filter, nearest
first order, distance shown, the distance part of the score — works from their public point
(``foster_carers.public_location``, their commune's point, migration 0010), and the distance
is rounded to the kilometre in SQL, so that what ranks and what is shown carry no more than
the commune the answer names (issue #15: bisecting search origins around the rounded
distance to a home located it to the metre). The origin is rounded to 0.01° before any
distance is computed (``round_origin``). For a lieu de vie et d'accueil (``api.precision``:
often the staff's home): its commune's point and the distance to it, rounded to the
kilometre — what ranks it, too.
"""

import asyncio
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from api.capacity.repository import carer_free_sql
from api.precision import rounded_km_sql
from matching import LADDERS, Area, Need, Offer, Step, accepts

CANDIDATES_PER_KIND = 120
"""Nearest candidates fetched per kind and step: several times any ``limit`` the API
accepts, so that scoring (not SQL order) decides the ranking among the nearby ones."""


@dataclass(frozen=True, slots=True)
class Origin:
    lat: float
    lon: float
    department: str
    commune: str | None
    authority: str
    """The competent authority of the origin's commune."""
    searcher: str | None = None
    """The searching authority (search: the principal's; by default the origin's): a carer
    closed to other authorities is proposed only to their employer's (#15)."""


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


ALL_TEMPORALITIES = ("current", "d7", "h1", "h24", "h48")
_ARGS = {"unit": 10, "carer": 8}
"""Parameters of each kind's query before the geographic ones."""

NEAREST_ROWS = 400
"""Rows of a search's one national read per kind (``_Nearest``): every temporality, nearest
first. Most needs that get past the first radius steps have fewer matches than this in the
whole country (a sibling group, a disability profile, a rare care mode: the needs that walk
the ladder), so the read is complete and every later step is a filter of it; for the others
it is a prefix long enough for most steps. Measured (BENCHMARKS.md, #16): 400 rows keep the
mapping to ``Offer`` (Python) under the SQL it spares."""

_MARGIN = 1.01
"""The KNN order, the distance and a radius (``ST_DWithin(…, false)``) are all the sphere's
(#16: the spheroid's, computed per row, was most of a national read's time; the two differ
by less than 0.5 %), but computed by different functions: a prefix whose last row is this
much beyond a radius holds every row within it, whatever their rounding."""


@dataclass(frozen=True, slots=True)
class _Nearest:
    """The nearest ``NEAREST_ROWS`` candidates of one kind, national, every temporality,
    in the order of the step queries (KNN distance, id, temporality), with each row's KNN
    distance and exact distance in metres; ``complete`` when the country holds no more.
    Rows become ``Offer`` only when a step returns them (most steps return a few of the
    400: mapping them all cost more than the query, #16)."""

    kind: str
    rows: Sequence[Mapping[str, Any]]
    """The query's rows (``knn``, ``metres``, ``temporality`` for units, ``department``…)."""
    complete: bool
    to_offer: Callable[[Mapping[str, Any]], Offer]
    bound_m: float | None = None
    """A ring read's radius (``_read``): it knows nothing beyond, and answers only the radius
    steps within it; None for the national read."""
    offers: dict[int, Offer] = field(default_factory=dict)

    def _offer(self, i: int) -> Offer:
        found = self.offers.get(i)
        if found is None:
            found = self.offers[i] = self.to_offer(self.rows[i])
        return found

    def step(
        self, step: Step, neighbours: frozenset[str], limit: int = CANDIDATES_PER_KIND
    ) -> list[Offer] | None:
        """What the step's own query returns — its first ``limit`` rows — when
        this read decides it, else None. Beyond the last row's distance (ties included) the
        read knows nothing, unless it is complete: a step is decided when it fills its LIMIT
        before that distance, or when its radius lies within it."""
        radius = None if step.radius_km is None else step.radius_km * 1000.0
        if self.bound_m is not None and (
            step.area != Area.RADIUS or radius is None or radius > self.bound_m
        ):
            return None
        horizon = float("inf") if self.complete or not self.rows else self.rows[-1]["knn"]
        units = self.kind == "unit"
        found: list[int] = []
        for i, r in enumerate(self.rows):
            if r["knn"] >= horizon:
                break
            if (r["temporality"] if units else "current") not in step.temporalities:
                continue  # a carer declares places free now only
            if step.area != Area.NATIONAL:
                assert radius is not None
                near = r["metres"] <= radius
                if not near and not (
                    step.area == Area.NEIGHBOURS and r["department"] in neighbours
                ):
                    continue
            found.append(i)
            if len(found) == limit:
                return [self._offer(j) for j in found]
        if self.complete or (
            step.area == Area.RADIUS and radius is not None and horizon > radius * _MARGIN
        ):
            return [self._offer(j) for j in found]
        return None


def _first_ring(step: Step) -> bool:
    """The request's own radius or its widening, places free now: what most searches end
    at, answered by a query bounded by the radius; the national read starts after it."""
    return step.area == Area.RADIUS and step.temporalities == {"current"}


async def _query(
    conn: asyncpg.Connection,
    kind: str,
    area: str,
    args: list[Any],
    memo: dict[tuple[Any, ...], Any] | None,
    disability: str = "stated",
) -> list[Offer]:
    key = (kind, area, disability, *(tuple(a) if isinstance(a, list) else a for a in args))
    if memo is not None and key in memo:
        found: list[Offer] = memo[key]
        return found
    queries = AWAY_QUERIES if len(args) > _ARGS[kind] + _GEO_PARAMS[Area(area)] else QUERIES
    now = kind == "unit" and args[1] == ["current"]
    sql = queries[(kind, area, disability, now)]
    found = [offer_from_row(kind, r) for r in await conn.fetch(sql, *args)]
    if memo is not None:
        memo[key] = found
    return found


RING_FACTOR = max(
    step.radius_factor or 0.0
    for ladder in LADDERS.values()
    for step in ladder
    if step.area == Area.RADIUS
)
"""The widest radius of the ladders' radius steps, in requested radii (widen_radius: 2): a
search's ring read (``_read``) covers every radius step of its ladder."""


async def _read(
    conn: asyncpg.Connection,
    kind: str,
    need: Need,
    origin: Origin,
    step: Step,
    memo: dict[tuple[Any, ...], Any],
    disability: str,
) -> _Nearest:
    """The search's shared read of one kind for the step's hard filters (the split step's
    differ), every temporality, once per search, ``DISABILITY_FILTER`` and kind of read:

    - for a radius step, the **ring read**: within ``RING_FACTOR`` times the requested radius,
      so the ladder's radius steps past the first ring (places free later, the doubled
      radius) are answered from the rows near the family only — the national read they used
      before scanned, for a need few offers meet, every free place of the country (#16);
    - for the others (neighbouring departments, national, the forecasts after them), the
      **national read**."""
    bound_km = None
    if step.area == Area.RADIUS:
        assert step.radius_km is not None and step.radius_factor
        bound_km = step.radius_km / step.radius_factor * RING_FACTOR
    area = Area.NATIONAL if bound_km is None else Area.RADIUS
    read = Step(
        step.code,
        step.label,
        area,
        None if bound_km is None else RING_FACTOR,
        frozenset(ALL_TEMPORALITIES),
        radius_km=bound_km,
        split_siblings=step.split_siblings,
    )
    args = query_args(kind, need, origin, read, [], NEAREST_ROWS)
    key = ("read", kind, disability, *(tuple(a) if isinstance(a, list) else a for a in args))
    if key not in memo:
        rows = await conn.fetch(QUERIES[(kind, area, disability, False)], *args)
        memo[key] = _Nearest(
            kind,
            rows,
            complete=len(rows) < NEAREST_ROWS,
            to_offer=functools.partial(offer_from_row, kind),
            bound_m=None if bound_km is None else bound_km * 1000.0,
        )
    found: _Nearest = memo[key]
    return found


async def fetch_offers(
    conn: asyncpg.Connection,
    need: Need,
    origin: Origin,
    step: Step,
    neighbours: list[str],
    memo: dict[tuple[Any, ...], Any] | None = None,
    carers_conn: asyncpg.Connection | None = None,
    want: int | None = None,
    exclude: Collection[tuple[str, str]] = (),
) -> list[Offer]:
    """Candidates of both kinds for one step: what the step's query returns. ``memo`` (one
    per search) spares queries. The first ring of the ladder (``_first_ring``) runs its own
    query, bounded by the radius. Past it, a search reads once per kind the nearest
    ``NEAREST_ROWS`` candidates of every temporality (``_read``): within ``RING_FACTOR``
    times the requested radius for the later radius steps (places free later, the doubled
    radius), in the whole country for the steps beyond (neighbouring departments, national,
    the forecasts after them). Each read answers a step when it decides it
    (``_Nearest.step``), the step's own query otherwise. Before (#16, measured), every step
    scanned the country's free offer again: a search that walked the ladder cost
    several times the offer, four times more at four times the data. With ``carers_conn``,
    the carers' query runs on it while the units' runs on ``conn``.

    Disability (module docstring): the offers with a word on the children's profiles first;
    the silent ones too unless ``want`` (the search's limit) of the former — distinct, taking
    the whole group, not in ``exclude`` — are found: at this step they all rank before any
    silent one, so the silent ones could not be among the first ``want`` options. Without
    ``want``, both are always read (every admissible offer of the step)."""
    stated = await _both_kinds(conn, need, origin, step, neighbours, memo, carers_conn, "stated")
    if not _profiles(need, step):
        return stated
    if want is not None:
        excluded = frozenset(exclude)
        found = {o.key for o in stated if o.key not in excluded and accepts(need, o)}
        if len(found) >= want:
            return stated
    silent = await _both_kinds(conn, need, origin, step, neighbours, memo, carers_conn, "unstated")
    return [*stated, *silent]


def _profiles(need: Need, step: Step) -> bool:
    """Whether the step's queries filter on profiles (never at the split step: an offer
    qualifies there by taking at least one child, ``query_args``)."""
    return not step.split_siblings and any(c.disability_profiles for c in need.children)


async def _both_kinds(
    conn: asyncpg.Connection,
    need: Need,
    origin: Origin,
    step: Step,
    neighbours: list[str],
    memo: dict[tuple[Any, ...], Any] | None,
    carers_conn: asyncpg.Connection | None,
    disability: str,
) -> list[Offer]:
    """Units and carers of one step for one ``DISABILITY_FILTER``."""
    near = frozenset([origin.department, *neighbours])

    async def of_kind(kind: str, on: asyncpg.Connection) -> list[Offer]:
        # The split step is the last and the only one with its filters: nothing to share.
        # A place away from the family (``min_distance_km``) skips the nearer rows in SQL,
        # which the national read would spend its rows on: its steps run their own queries.
        shared = not _first_ring(step) and not step.split_siblings
        if memo is not None and shared and need.min_distance_km is None:
            read = await _read(on, kind, need, origin, step, memo, disability)
            found = read.step(step, near)
            if found is not None:
                return found
        args = query_args(kind, need, origin, step, neighbours)
        return await _query(on, kind, step.area, args, memo, disability)

    if carers_conn is None:
        return [*await of_kind("unit", conn), *await of_kind("carer", conn)]
    units, carers = await asyncio.gather(of_kind("unit", conn), of_kind("carer", carers_conn))
    return [*units, *carers]


_FROZEN: dict[tuple[str, ...], frozenset[str]] = {}
_FROZEN_MAX = 4096
_EITHER_SEX = frozenset({"F", "M"})


def _frozen(values: list[str]) -> frozenset[str]:
    """One shared frozenset per distinct array: offers' vocabularies (timings, sexes,
    profiles…) are a few hundred combinations, and a search maps up to a thousand rows —
    building a set per row and column was most of the mapping's cost (#16, cProfile)."""
    key = tuple(values)
    found = _FROZEN.get(key)
    if found is None:
        found = frozenset(values)
        if len(_FROZEN) < _FROZEN_MAX:
            _FROZEN[key] = found
    return found


def offer_from_row(kind: str, r: asyncpg.Record, distance_km: float | None = None) -> Offer:
    """The one mapping from a candidate row to a matching ``Offer`` (search and assignment
    select the same columns); ``distance_km`` overrides the row's when computed elsewhere.
    Carers accept either sex and carry no temporality (they declare "now" only). A carer's
    distance is whole kilometres to their public point, whoever computed it (search's SQL,
    the optimiser's haversine): the score is computed from that, never from more."""
    km = float(r["distance_km"] if distance_km is None else distance_km)
    if kind == "carer":
        km = float(round(km))
    common = {
        "kind": kind,
        "id": r["id"],
        "department": r["department"],
        "commune": r["commune"],
        "distance_km": km,
        "free_places": r["free_places"],
        "age_min_months": r["age_min_months"],
        "age_max_months": r["age_max_months"],
        "timings": _frozen(r["timings"]),
        "publics": _frozen(r["publics"]),
        "formulas": _frozen(r["formulas"]),
        "disability_specialised": _frozen(r["disability_specialised"]),
        "disability_supported": _frozen(r["disability_supported"]),
        "declared_age_days": max(0.0, float(r["declared_age_days"])),
        "lat": r["lat"],
        "lon": r["lon"],
    }
    if kind == "unit":
        return Offer(
            **common,
            sexes=_frozen(r["sexes"]),
            temporality=r.get("temporality", "current"),
            available_gender=r["available_gender"],
            structure_id=r["structure_id"],
            structure_name=r["structure_name"],
            finess=r["finess"],
            category=r["category"],
        )
    # Retrieved by the SQL's predicate (valid agrément, not on leave today): say so to the
    # library, whose hard constraints check it again; the optimiser's rows say it too.
    return Offer(
        **common,
        sexes=_EITHER_SEX,
        status=r.get("status", "active"),
        agrement_valid=r.get("agrement_valid", True),
    )


async def resolve_origin(
    conn: asyncpg.Connection, commune: str | None, lat: float | None, lon: float | None
) -> Origin | None:
    """A commune's point and department, or the department of the commune nearest to a
    point (KNN on the communes' GiST index). None when the commune is unknown."""
    if commune is not None:
        row = await conn.fetchrow(
            "SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,"
            " department, authority FROM communes WHERE insee = $1",
            commune,
        )
        if row is None:
            return None
        return Origin(
            row["lat"], row["lon"], row["department"], commune, row["authority"], row["authority"]
        )
    assert lat is not None and lon is not None
    row = await conn.fetchrow(
        """
        SELECT insee, department, authority FROM communes
         ORDER BY location <-> ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography
         LIMIT 1
        """,
        lat,
        lon,
    )
    if row is None:
        return None
    return Origin(lat, lon, row["department"], None, row["authority"], row["authority"])
