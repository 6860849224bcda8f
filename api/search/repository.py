"""Candidate retrieval: what each ladder step may propose, from the process's index of the
free offer (``api.search.offer_index``), brought up to date in the search's transaction.

A step's candidates of one kind (units, carers) are the nearest ``CANDIDATES_PER_KIND``
offers meeting its hard filters (free places for the temporalities counted, the need's
timing, public and formula, age band in months, sexes; for a carer: agrément valid today and
not on leave today — the one predicate ``api.capacity.repository.carer_free_sql`` —, their
preferences rather than the agrément's bounds, and the employer's openness to the searching
authority), within the step's geography: the radius, plus the origin's and neighbouring
departments (neighbours step), or the whole country. Ties at the cut are broken by id and
temporality, so the rows returned never depend on storage order. matching/ re-checks every
hard constraint anyway. Until #16's last change each step was two SQL queries (kept as the
index's test oracle, ``tests/support/step_sql.py``).

Disability profiles are graded (#16, ``matching.disability``): an offer with a word on each
of the children's profiles (specialised or with support) ranks, at its step, before any
offer silent on one, which is admissible only as a stated relaxation. Each step therefore
reads the offers *with a word* (``stated``: the profiles are a subset of the two levels'
union); only when they are fewer than the search's limit does it read the *silent* ones too
(``unstated``, the complement).

A carer's home is never read here: every use of their position — radius filter, nearest
first order, distance shown, the distance part of the score — works from their public point
(``foster_carers.public_location``, their commune's point, migration 0010), and the distance
is rounded to the kilometre, so that what ranks and what is shown carry no more than the
commune the answer names (issue #15: bisecting search origins around the rounded distance to
a home located it to the metre). The origin is rounded to 0.01° before any distance is
computed. For a lieu de vie et d'accueil (``api.precision``: often the staff's home): its
commune's point and the distance to it, rounded to the kilometre — what ranks it, too.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from matching import Need, Offer, Step, accepts

if TYPE_CHECKING:
    from api.search.offer_index import SearchView

CANDIDATES_PER_KIND = 120
"""Nearest candidates per kind and step: several times any ``limit`` the API accepts, so
that scoring (not distance order) decides the ranking among the nearby ones."""


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


def fetch_offers(
    view: "SearchView",
    need: Need,
    step: Step,
    neighbours: Collection[str],
    want: int | None = None,
    exclude: Collection[tuple[str, str]] = (),
) -> list[Offer]:
    """Candidates of both kinds for one step, from the search's ``view`` of the index.

    Disability (module docstring): the offers with a word on the children's profiles first;
    the silent ones too unless ``want`` (the search's limit) of the former — distinct, taking
    the whole group, not in ``exclude`` — are found: at this step they all rank before any
    silent one, so the silent ones could not be among the first ``want`` options. Without
    ``want``, both are always read (every admissible offer of the step)."""
    stated = _both_kinds(view, need, step, neighbours, "stated")
    if not _profiles(need, step):
        return stated
    if want is not None:
        excluded = frozenset(exclude)
        found = {o.key for o in stated if o.key not in excluded and accepts(need, o)}
        if len(found) >= want:
            return stated
    return [*stated, *_both_kinds(view, need, step, neighbours, "unstated")]


def _profiles(need: Need, step: Step) -> bool:
    """Whether the step filters on profiles (never at the split step: an offer qualifies
    there by taking at least one child)."""
    return not step.split_siblings and any(c.disability_profiles for c in need.children)


def _both_kinds(
    view: "SearchView", need: Need, step: Step, neighbours: Collection[str], disability: str
) -> list[Offer]:
    """Units, then carers, of one step for one disability filter."""
    return [
        *view.step("unit", need, step, neighbours, disability, CANDIDATES_PER_KIND),
        *view.step("carer", need, step, neighbours, disability, CANDIDATES_PER_KIND),
    ]


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


def offer_from_row(kind: str, r: Mapping[str, Any], distance_km: float | None = None) -> Offer:
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
