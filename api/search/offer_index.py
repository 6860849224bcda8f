"""The free offer in memory: each process keeps every free unit place and every free carer,
and answers a search's ladder steps from arrays instead of two SQL queries per step (#16).

Why: a search walks its urgency's ladder, three to six steps, and each step asked the
database for the nearest admissible units and carers. The queries were fast (a KNN walk of a
partial GiST index, a millisecond or two), but a search paid a round trip, a plan, and the
mapping of hundreds of rows per step, and a need few offers meet read every free place of
the country at its national step. The free offer is small — at scale 1, 5,600 unit places
and 4,200 carers with a free place — so each process holds it as columns (NumPy arrays, one
slot per offer) and answers a search's steps in about 1.6 ms in all (p50, measured with its
ladder, #16), where the SQL took several.

Why it is exact, not a cache that may lag: each row of ``capacity_snapshots`` and
``foster_carers`` carries the id of the transaction that last wrote it (``changed_xid``,
migration 0023, set by a trigger whoever writes). Each read records the snapshot it was
taken in (``pg_current_snapshot()``). At the start of each search, in the search's own
transaction, one statement asks whether anything changed since (``SNAPSHOT``); when it did,
the index reads the rows whose writer that snapshot did not see (``pg_visible_in_snapshot``)
and the keys of rows deleted since (``offer_removals``). Then the search runs on the index
with nothing awaited in between: it sees every write committed before it, as its own SQL
did. A TRUNCATE (``offer_removals`` kind ``all``) or a new day (a carer's agrément and leave
are read as of today, ``carer_free_sql``) reloads the whole; another server (a restart, a
promotion, a standby) has an index of its own.

What a step returns is what its SQL query returned (``tests/support/step_sql.py`` keeps those
queries, and ``tests/test_search_national.py`` compares both on the national dataset): the same
hard filters, the same geography (distances on the sphere, as PostGIS's ``<->`` and
``ST_DWithin(…, false)`` compute them), the same order (distance, id, temporality) and
limit. A carer's home is not here: their public point (their commune's) only, as before.
"""

import asyncio
import math
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from api.capacity.repository import carer_free_sql
from api.precision import COMMUNE_PRECISION_CATEGORIES
from api.search.repository import Origin, offer_from_row
from matching import Area, Need, Offer, Step

EARTH_RADIUS_M = 6371008.7714150598
"""PostGIS's sphere for geography distances without the spheroid (the WGS 84 mean radius,
(2a + b) / 3): the radius of ``<->`` and ``ST_DWithin(…, false)``."""

TEMPORALITIES = ("current", "d7", "h1", "h24", "h48")
"""Unit snapshots' temporalities, in the order of their codes (the SQL's text order)."""

_UNITS = """
SELECT cs.unit_id::text AS id, cs.temporality, cs.structure_id::text AS structure_id,
       cs.structure_name, cs.finess, cs.category, cs.department, cs.commune,
       cs.age_min_months, cs.age_max_months, cs.sexes, cs.timings, cs.publics, cs.formulas,
       cs.disability_specialised, cs.disability_supported,
       cs.available AS free_places, cs.available_gender,
       extract(epoch FROM cs.declared_at)::float8 AS declared_at,
       ST_Y(cs.location::geometry) AS lat, ST_X(cs.location::geometry) AS lon
  FROM capacity_snapshots cs
 WHERE {rows}
"""

_CARERS = f"""
SELECT c.id::text AS id, c.department, c.commune,
       c.preferred_age_min_months AS age_min_months,
       c.preferred_age_max_months AS age_max_months,
       c.preferred_timings AS timings, c.preferred_publics AS publics,
       c.preferred_formulas AS formulas,
       c.disability_specialised, c.disability_supported,
       c.available_places AS free_places,
       extract(epoch FROM c.declared_at)::float8 AS declared_at,
       ST_Y(c.public_location::geometry) AS lat, ST_X(c.public_location::geometry) AS lon,
       c.open_to_other_authorities AS open, c.employing_authority,
       {carer_free_sql("c")} AS free_today
  FROM foster_carers c
 WHERE {{rows}}
"""

_XMIN = "pg_snapshot_xmin($1::text::pg_snapshot)"
_CHANGED = (
    """{t}.changed_xid >= """
    + _XMIN
    + """
   AND NOT pg_visible_in_snapshot({t}.changed_xid, $1::text::pg_snapshot)"""
)

UNITS_ALL = _UNITS.format(rows="cs.available > 0")
UNITS_CHANGED = _UNITS.format(rows=_CHANGED.format(t="cs"))
CARERS_ALL = _CARERS.format(rows="c.available_places > 0")
CARERS_CHANGED = _CARERS.format(rows=_CHANGED.format(t="c"))

SNAPSHOT = f"""
SELECT pg_current_snapshot()::text AS snapshot,
       current_date AS today, extract(epoch FROM now())::float8 AS now,
       ARRAY[(SELECT system_identifier::text FROM pg_control_system()), current_database(),
             pg_is_in_recovery()::text, pg_postmaster_start_time()::text] AS server,
       (SELECT max(changed_xid) FROM offer_removals) >= {_XMIN} AS removed,
       (SELECT max(changed_xid) FROM capacity_snapshots) >= {_XMIN} AS units,
       (SELECT max(changed_xid) FROM foster_carers) >= {_XMIN} AS carers
"""
CUSTOM_PLANS = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL max_parallel_workers_per_gather = 0"
)
"""For the reads of rows (the refresh runs in the search's transaction): each planned for its
own snapshot, and no parallel workers (a read of a few rows, or the whole offer once)."""

REMOVED = f"""
SELECT r.kind, r.offer_id, r.temporality
  FROM offer_removals r
 WHERE {_CHANGED.format(t="r")}
"""


class _Codes:
    """Small integers for strings (departments, authorities)."""

    def __init__(self) -> None:
        self.of: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        if value is None:
            return -1
        found = self.of.get(value)
        if found is None:
            found = self.of[value] = len(self.of)
        return found


class _Bits:
    """One bit per code of a vocabulary (timings, profiles…): a set is an int64 mask."""

    MAX = 63

    def __init__(self) -> None:
        self.of: dict[str, int] = {}

    def mask(self, values: Iterable[str]) -> int:
        out = 0
        for v in values:
            bit = self.of.get(v)
            if bit is None:
                if len(self.of) == self.MAX:
                    raise ValueError(f"vocabulaire trop grand pour l'index de l'offre : {v!r}")
                bit = self.of[v] = len(self.of)
            out |= 1 << bit
        return out

    def known(self, values: Iterable[str]) -> int | None:
        """The mask of ``values``, or None when one of them is in no offer (no bit yet)."""
        out = 0
        for v in values:
            bit = self.of.get(v)
            if bit is None:
                return None
            out |= 1 << bit
        return out


_COLUMNS: dict[str, Any] = {
    "live": np.bool_,
    "lat": np.float64,  # radians
    "lon": np.float64,
    "coslat": np.float64,
    "sinlat": np.float64,
    "dept": np.int32,
    "temp": np.int8,
    "places": np.int32,
    "amin": np.int32,
    "amax": np.int32,
    "sexes": np.int64,
    "timings": np.int64,
    "publics": np.int64,
    "formulas": np.int64,
    "stated": np.int64,  # profiles with a word: specialised or with support
    "open": np.bool_,
    "employer": np.int32,
    "whole_km": np.bool_,  # a commune's point: whole kilometres (api.precision, carers)
    "declared": np.float64,  # epoch seconds
}


class _Table:
    """One kind's offers as columns: a slot per offer (a unit's snapshot of one temporality,
    a carer), reused when freed; ``rows`` keeps each slot's row for its ``Offer``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.clear()

    def clear(self) -> None:
        self.slot: dict[tuple[str, str], int] = {}
        self.vacant: list[int] = []
        self.offers: list[Offer | None] = []
        """Each slot's offer as built once (distance 0, declared now): a search moves it."""
        self.ids: list[str] = []
        self.size = 0
        self.col: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(64, dtype) for name, dtype in _COLUMNS.items()
        }

    def _grow(self) -> None:
        capacity = len(self.col["live"]) * 2
        for name, array in self.col.items():
            grown = np.zeros(capacity, array.dtype)
            grown[: len(array)] = array
            self.col[name] = grown

    def remove(self, key: tuple[str, str]) -> None:
        i = self.slot.pop(key, None)
        if i is not None:
            self.col["live"][i] = False
            self.offers[i] = None
            self.vacant.append(i)

    def put(self, key: tuple[str, str], row: dict[str, Any], index: "OfferIndex") -> None:
        i = self.slot.get(key)
        if i is None:
            if self.vacant:
                i = self.vacant.pop()
            else:
                i = self.size
                self.size += 1
                if i == len(self.col["live"]):
                    self._grow()
                self.offers.append(None)
                self.ids.append("")
            self.slot[key] = i
        c = self.col
        lat, lon = math.radians(row["lat"]), math.radians(row["lon"])
        c["lat"][i], c["lon"][i] = lat, lon
        c["coslat"][i], c["sinlat"][i] = math.cos(lat), math.sin(lat)
        c["dept"][i] = index.departments.code(row["department"])
        c["temp"][i] = TEMPORALITIES.index(row.get("temporality", "current"))
        c["places"][i] = row["free_places"]
        c["amin"][i], c["amax"][i] = row["age_min_months"], row["age_max_months"]
        c["sexes"][i] = index.sexes.mask(row["sexes"] if "sexes" in row else ("F", "M"))
        c["timings"][i] = index.timings.mask(row["timings"])
        c["publics"][i] = index.publics.mask(row["publics"])
        c["formulas"][i] = index.formulas.mask(row["formulas"])
        c["stated"][i] = index.profiles.mask(
            [*row["disability_specialised"], *row["disability_supported"]]
        )
        c["open"][i] = row.get("open", False)
        c["employer"][i] = index.authorities.code(row.get("employing_authority"))
        c["whole_km"][i] = self.kind == "carer" or row["category"] in COMMUNE_PRECISION_CATEGORIES
        c["declared"][i] = row["declared_at"]
        c["live"][i] = True
        self.offers[i] = offer_from_row(self.kind, {**row, "declared_age_days": 0.0}, 0.0)
        self.ids[i] = row["id"]


def _key(kind: str, row: Mapping[str, Any]) -> tuple[str, str]:
    return (row["id"], row["temporality"] if kind == "unit" else "")


def _searchable(kind: str, row: Mapping[str, Any]) -> bool:
    """Whether a row read is an offer a search may return: a free place (a carer's free
    today); without a point it could be in no step (SQL: a NULL distance is within no
    radius), and no row has none (0021's trigger, 0010's)."""
    if row["lat"] is None or row["free_places"] <= 0:
        return False
    return kind == "unit" or bool(row["free_today"])


@dataclass(frozen=True, slots=True)
class Filters:
    """The hard filters of one step's query, from the need (``query_args``' of old): places,
    age band, sexes, the children's profiles; the split step's differ (one child suffices)."""

    places: int
    age_lo: int
    age_hi: int
    sexes_any: tuple[str, ...]
    sexes_all: tuple[str, ...]
    profiles: tuple[str, ...]

    @classmethod
    def of(cls, need: Need, split: bool) -> "Filters":
        ages = [c.age_months for c in need.children]
        # An expected child (Need.parent_expecting) has no sex yet: either will do.
        sexes = tuple(sorted({c.sex for c in need.children if not c.expected})) or ("F", "M")
        if split:  # an offer qualifies by taking at least one child: its band overlaps
            return cls(1, max(ages), min(ages), sexes, (), ())
        return cls(
            need.size,
            min(ages),
            max(ages),
            sexes,
            tuple(sorted({c.sex for c in need.children if not c.expected})),
            tuple(sorted({p for c in need.children for p in c.disability_profiles})),
        )


def _half_up(x: float) -> float:
    """SQL's ``round(numeric)``: halves away from zero (Python's ``round`` goes to even)."""
    return float(math.floor(x + 0.5))


@dataclass
class SearchView:
    """One search's reads of the index: its origin, the time its transaction started, and
    what it computed once (each kind's admissible slots and their distances, the offers
    moved to it)."""

    index: "OfferIndex"
    needs: tuple[str, str, str]
    """The need's timing, public and formula, which every step asks."""
    lat: float
    lon: float
    department: str
    searcher: str | None
    now: float
    """Epoch seconds of the search transaction's ``now()`` (the declarations' ages)."""
    _static: dict[tuple[Any, ...], tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = field(
        default_factory=dict
    )
    _offers: dict[tuple[str, int], Offer] = field(default_factory=dict)

    def _distance_to(self, kind: str, slots: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Metres on PostGIS's sphere from the origin to ``slots`` of ``kind``
        (``sphere_distance`` of liblwgeom: the Vincenty formula's special case on a sphere,
        well conditioned at every distance)."""
        c = self.index.table(kind).col
        lon, coslat, sinlat = c["lon"][slots], c["coslat"][slots], c["sinlat"][slots]
        lat0, lon0 = math.radians(self.lat), math.radians(self.lon)
        dlon = lon - lon0
        cos_dlon = np.cos(dlon)
        a1 = coslat * np.sin(dlon)
        a2 = math.cos(lat0) * sinlat - math.sin(lat0) * coslat * cos_dlon
        b = math.sin(lat0) * sinlat + math.cos(lat0) * coslat * cos_dlon
        distance: npt.NDArray[np.float64] = np.arctan2(np.hypot(a1, a2), b) * EARTH_RADIUS_M
        return distance

    def _admissible(
        self, kind: str, f: Filters, disability: str, min_m: float | None
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """The slots of ``kind`` meeting the filters every step of the search shares, and
        their distances (measured for those only): once per search and filters."""
        key = (kind, f, disability, min_m)
        found = self._static.get(key)
        if found is not None:
            return found
        index = self.index
        table = index.table(kind)
        c = {name: column[: table.size] for name, column in table.col.items()}
        mask = c["live"] & (c["places"] >= f.places)
        mask &= (c["amin"] <= f.age_lo) & (c["amax"] >= f.age_hi)
        needs = (
            (index.timings, c["timings"], self.needs[0]),
            (index.publics, c["publics"], self.needs[1]),
            (index.formulas, c["formulas"], self.needs[2]),
        )
        for bits, column, code in needs:
            bit = bits.known([code])
            mask &= False if bit is None else (column & bit) != 0
        if kind == "unit":
            any_bits = index.sexes.known([s for s in f.sexes_any if s in index.sexes.of])
            mask &= False if not any_bits else (c["sexes"] & any_bits) != 0
            all_bits = index.sexes.known(f.sexes_all)
            mask &= False if all_bits is None else (c["sexes"] & all_bits) == all_bits
        else:  # whom a carer may be proposed to: their employer, or anyone if opened (#15)
            own = -2 if self.searcher is None else index.authorities.of.get(self.searcher, -2)
            mask &= c["open"] | (c["employer"] == own)
        profiles = index.profiles.known(f.profiles)
        stated = np.zeros_like(mask) if profiles is None else (c["stated"] & profiles) == profiles
        mask &= stated if disability == "stated" else ~stated
        slots = np.flatnonzero(mask)
        distance = self._distance_to(kind, slots)
        if min_m is not None:  # NOT ST_DWithin(…, min): strictly beyond
            beyond = distance > min_m
            slots, distance = slots[beyond], distance[beyond]
        found = self._static[key] = (slots, distance)
        return found

    def step(
        self,
        kind: str,
        need: Need,
        step: Step,
        neighbours: Collection[str],
        disability: str,
        limit: int,
    ) -> list[Offer]:
        """What the step's query returned: the first ``limit`` offers of ``kind`` meeting its
        hard filters, nearest first, then by id and temporality."""
        index = self.index
        table = index.table(kind)
        min_m = None if need.min_distance_km is None else need.min_distance_km * 1000.0
        filters = Filters.of(need, step.split_siblings)
        slots, distance = self._admissible(kind, filters, disability, min_m)
        if kind == "unit":
            counted = np.array([t in step.temporalities for t in TEMPORALITIES])
            keep = counted[table.col["temp"][slots]]
        elif "current" not in step.temporalities:  # carers declare places free now only
            return []
        else:
            keep = np.ones(len(slots), np.bool_)
        if step.area != Area.NATIONAL:
            assert step.radius_km is not None
            near = distance <= step.radius_km * 1000.0
            if step.area == Area.NEIGHBOURS:
                departments = np.zeros(len(index.departments.of) + 1, np.bool_)
                for d in (self.department, *neighbours):
                    departments[index.departments.of.get(d, -1)] = True
                departments[-1] = False  # the slot of departments no offer has
                near |= departments[table.col["dept"][slots]]
            keep &= near
        slots, distance = slots[keep], distance[keep]
        if len(slots) > limit:  # keep the limit's nearest, ties at the cut included
            cut = np.partition(distance, limit - 1)[limit - 1]
            nearest = distance <= cut
            slots, distance = slots[nearest], distance[nearest]
        ids, temps = table.ids, table.col["temp"]
        ordered = sorted(
            zip(
                distance.tolist(),
                [ids[i] for i in slots],
                temps[slots].tolist(),
                slots.tolist(),
                strict=True,
            )
        )[:limit]
        return [self._offer(kind, i, metres) for metres, _, _, i in ordered]

    def _offer(self, kind: str, i: int, metres: float) -> Offer:
        found = self._offers.get((kind, i))
        if found is None:
            table = self.index.table(kind)
            base = table.offers[i]
            assert base is not None
            km = metres / 1000.0
            if table.col["whole_km"][i]:
                km = _half_up(km)  # a commune's point: whole kilometres (api.precision)
            age = max(0.0, (self.now - float(table.col["declared"][i])) / 86400.0)
            found = self._offers[(kind, i)] = base.seen_from(km, age)
        return found


class OfferIndex:
    """A process's free offer, brought up to date by ``refresh`` in each search's
    transaction (module docstring)."""

    def __init__(self) -> None:
        self.units = _Table("unit")
        self.carers = _Table("carer")
        self.snapshot: str | None = None
        self.today: Any = None
        self.departments = _Codes()
        self.authorities = _Codes()
        self.sexes, self.timings, self.publics, self.formulas = (_Bits() for _ in range(4))
        self.profiles = _Bits()
        self.reloads = 0
        """Whole reads since the process started (tests and the benchmark read it)."""

    def table(self, kind: str) -> _Table:
        return self.units if kind == "unit" else self.carers

    def _apply(self, kind: str, rows: Iterable[asyncpg.Record]) -> None:
        table = self.table(kind)
        for record in rows:
            row = dict(record)
            if _searchable(kind, row):
                table.put(_key(kind, row), row, self)
            else:
                table.remove(_key(kind, row))

    async def refresh(self, conn: asyncpg.Connection, meta: Mapping[str, Any]) -> None:
        """Bring the index to what ``conn``'s transaction sees, from ``SNAPSHOT``'s answer for
        this index's last snapshot (``meta``): only what it says changed is read."""
        removed: list[asyncpg.Record] = []
        whole = self.snapshot is None or meta["today"] != self.today
        if whole or meta["removed"] or meta["units"] or meta["carers"]:
            # The changes' reads are planned for the snapshot given: a generic plan of
            # ``changed_xid >= $1`` guesses a third of the table and scans it.
            await conn.execute(CUSTOM_PLANS)
        if not whole and meta["removed"]:
            removed = await conn.fetch(REMOVED, self.snapshot)
            whole = any(r["kind"] == "all" for r in removed)
        if whole:
            units = await conn.fetch(UNITS_ALL)
            carers = await conn.fetch(CARERS_ALL)
            for table in (self.units, self.carers):
                table.clear()
            self.reloads += 1
        else:
            for r in removed:
                self.table(r["kind"]).remove((r["offer_id"], r["temporality"] or ""))
            units = await conn.fetch(UNITS_CHANGED, self.snapshot) if meta["units"] else []
            carers = await conn.fetch(CARERS_CHANGED, self.snapshot) if meta["carers"] else []
        self._apply("unit", units)
        self._apply("carer", carers)
        self.snapshot, self.today = meta["snapshot"], meta["today"]

    def view(self, need: Need, origin: Origin, now: float) -> SearchView:
        """A search's reads: its need's, from its origin, at its transaction's ``now()``."""
        return SearchView(
            self,
            (need.timing, need.public, need.formula),
            origin.lat,
            origin.lon,
            origin.department,
            origin.searcher,
            now,
        )


_INDEXES: dict[tuple[str, ...], OfferIndex] = {}
_KEPT = 4
"""Indexes kept per process: the primary's and a standby's, and a few spare for a server
restarted (the oldest dropped first)."""
_LOCKS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = (
    weakref.WeakKeyDictionary()
)


def turn() -> asyncio.Lock:
    """The process's searches take turns from their refresh to the end of their matching:
    the index stays as that search's transaction saw it (one lock per event loop)."""
    loop = asyncio.get_running_loop()
    found = _LOCKS.get(loop)
    if found is None:
        found = _LOCKS[loop] = asyncio.Lock()
    return found


async def current(conn: asyncpg.Connection) -> tuple[OfferIndex, float]:
    """The index of the server ``conn`` reads, brought up to date in its transaction, and the
    epoch seconds of that transaction's ``now()``. Call it holding ``turn()``. One statement
    when nothing changed: it asks about the changes since the snapshot of the index used last
    (most often this one); another index's are asked again."""
    last = next(reversed(_INDEXES.values()), None)
    meta = await conn.fetchrow(SNAPSHOT, None if last is None else last.snapshot)
    assert meta is not None
    key = tuple(meta["server"])
    index = _INDEXES.pop(key, None) or OfferIndex()
    _INDEXES[key] = index  # the most recently used last
    while len(_INDEXES) > _KEPT:
        del _INDEXES[next(iter(_INDEXES))]
    if index is not last and index.snapshot is not None:
        meta = await conn.fetchrow(SNAPSHOT, index.snapshot)
        assert meta is not None
    await index.refresh(conn, meta)
    now: float = meta["now"]
    return index, now
