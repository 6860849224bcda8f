"""Optimize an authority's waiting list over every free place of its region.

The region is the regions of the authority's departments (one for each of the 100 today:
20R is Corse, 6AE Grand Est, 69M and 69D Auvergne-Rhône-Alpes). One query per kind loads the
region's free places (units' ``current`` snapshots with available places, active carers
with free places — carers at their public point, their commune's as in search, their home
never read). For each request, cheap vectorised filters (care mode,
age band, group size) and haversine distances keep the K nearest acceptable offers; then
matching/ solves the assignment exactly — the score plus what each child placed earns for
its wait since the decision and its urgency (``PLACES_OPTIMIZE_WAITING_WEIGHT``,
``PLACES_OPTIMIZE_URGENCY_WEIGHT``) — and, on the same candidates, the greedy
first-come-first-served plan; both are reported with the same figures (children placed,
days waited by those left, placed by urgency). It writes nothing but an audit entry: it
proposes.
"""

import asyncio
import math
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np

from api import changes
from api.assignments.schemas import OptimizeIn
from api.auth import Principal, require_authority_scope
from api.authorities import resolve_authority, single_department
from api.capacity.repository import carer_free_sql, carer_open_to_sql
from api.errors import Invalid, NotFound, field_error
from api.precision import commune_precision, point_sql
from api.search.repository import offer_from_row
from api.settings import Settings
from matching import Child, Need, Offer, Plan, greedy, optimize
from matching.assignment import Weights, plan_report

UNITS_SQL = """
SELECT u.id::text AS id, s.id::text AS structure_id, s.name AS structure_name, s.finess,
       s.category, s.department, s.commune, u.age_min_months, u.age_max_months, u.sexes,
       u.timings, u.publics, u.formulas, u.disability_specialised, u.disability_supported,
       cs.available AS free_places, cs.available_gender,
       extract(epoch FROM now() - cs.declared_at) / 86400.0 AS declared_age_days,
       ST_Y(({point})::geometry) AS lat, ST_X(({point})::geometry) AS lon
  FROM capacity_snapshots cs
  JOIN units u ON u.id = cs.unit_id
  JOIN structures s ON s.id = u.structure_id
  JOIN communes cm ON cm.insee = s.commune
  JOIN departments d ON d.code = s.department
 WHERE d.region_code = ANY($1::text[]) AND cs.temporality = 'current' AND cs.available > 0
 ORDER BY u.id
""".format(point=point_sql("s", "cm"))
"""A lieu de vie is at its commune's point (``api.precision``), so its distance is measured
to the commune, and shown rounded to the kilometre like a carer's."""

CARERS_SQL = f"""
SELECT c.id::text AS id, c.department, c.commune, c.preferred_age_min_months AS age_min_months,
       c.preferred_age_max_months AS age_max_months, c.preferred_timings AS timings,
       c.preferred_publics AS publics, c.preferred_formulas AS formulas,
       c.disability_specialised, c.disability_supported, c.available_places AS free_places,
       extract(epoch FROM now() - c.declared_at) / 86400.0 AS declared_age_days,
       ST_Y(c.public_location::geometry) AS lat, ST_X(c.public_location::geometry) AS lon
  FROM foster_carers c
  JOIN departments d ON d.code = c.department
 WHERE d.region_code = ANY($1::text[]) AND c.available_places > 0
   AND {carer_free_sql("c")} AND {carer_open_to_sql("c", "$2")}
 ORDER BY c.id
"""
"""The carers search would propose to the authority (``api.search.repository``): agrément
valid and not on leave today, matched on their preferences, open to it (#15)."""

REQUESTS_SQL = """
SELECT id, children, timing, public, formula, parent_expecting, urgency, department,
       GREATEST(0, current_date - decided_on) AS waited_days,
       ST_Y(origin_location::geometry) AS lat, ST_X(origin_location::geometry) AS lon
  FROM placement_requests
 WHERE authority = $1 AND status = 'waiting'
   AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
 ORDER BY decided_on, created_at, id
"""
"""Oldest decision first: the first-come-first-served order. ``waited_days``: whole days since
the decision (a decision dated in the future has not started anyone's wait)."""


def _haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


class _Offers:
    """The region's free places as columns, for vectorised pre-filtering."""

    def __init__(self, rows: list[tuple[str, asyncpg.Record]]) -> None:
        self.rows = rows
        self.lat = np.array([r["lat"] for _, r in rows], dtype=float)
        self.lon = np.array([r["lon"] for _, r in rows], dtype=float)
        self.age_min = np.array([r["age_min_months"] for _, r in rows], dtype=int)
        self.age_max = np.array([r["age_max_months"] for _, r in rows], dtype=int)
        self.places = np.array([r["free_places"] for _, r in rows], dtype=int)
        self.needs = [
            (frozenset(r["timings"]), frozenset(r["publics"]), frozenset(r["formulas"]))
            for _, r in rows
        ]

    def candidates(self, need: Need, lat: float, lon: float, k: int) -> list[Offer]:
        if not self.rows:
            return []
        ages = [c.age_months for c in need.children]
        mask = (self.age_min <= min(ages)) & (self.age_max >= max(ages))
        mask &= self.places >= need.size
        mask &= np.array(
            [need.timing in t and need.public in p and need.formula in f for t, p, f in self.needs],
            dtype=bool,
        )
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return []
        dist = _haversine_km(lat, lon, self.lat[idx], self.lon[idx])
        order = np.lexsort((idx, dist))[:k]
        picked = (self.rows[idx[i]] for i in order)
        return [
            offer_from_row(kind, row, float(d))
            for (kind, row), d in zip(picked, dist[order], strict=True)
        ]


def _need(row: asyncpg.Record) -> Need:
    """A waiting request as the library's need. Like its school and siblings placed, a
    child's disability service is not scored here (its weight counts as the family's
    distance, ``score.FAMILY_FALLBACK``); the profiles' levels and the MDPH notification are,
    as in search."""
    children = tuple(
        Child(
            c["age_months"],
            c["sex"],
            frozenset(c.get("disability_profiles", [])),
            c.get("mdph_notified"),
        )
        for c in row["children"]
    )
    return Need(
        children=children,
        timing=row["timing"],
        public=row["public"],
        formula=row["formula"],
        parent_expecting=row["parent_expecting"],
        urgency=row["urgency"],
        origin_department=row["department"],
    )


def _plan_out(
    plan: Plan,
    offers: dict[str, dict[tuple[str, str], Offer]],
    needs: list[tuple[str, Need]],
    waited_days: dict[str, float],
) -> dict[str, Any]:
    sizes = {rid: need.size for rid, need in needs}
    report = plan_report(plan, needs, waited_days)
    mean = report.unplaced_waited_days_mean
    assignments = []
    for a in plan.assignments:
        offer = offers[a.request_id][(a.kind, a.offer_id)]
        assignments.append(
            {
                "request_id": a.request_id,
                "target": {"kind": a.kind, "id": a.offer_id},
                "department": offer.department,
                "commune": offer.commune,
                "distance_km": round(
                    offer.distance_km,
                    1 if a.kind == "unit" and not commune_precision(offer.category or "") else 0,
                ),
                "places": sizes[a.request_id],
                "score": round(a.score, 4),
            }
        )
    return {
        "assignments": assignments,
        "total": round(plan.total, 4),
        "objective": round(plan.objective, 4),
        "unassigned": plan.unassigned,
        "children_placed": report.children_placed,
        "children_unplaced": report.children_unplaced,
        "unplaced_waited_days_mean": None if mean is None else round(mean, 1),
        "unplaced_waited_days_max": report.unplaced_waited_days_max,
        "placed_by_urgency": report.placed_by_urgency,
        "method": plan.method,
        "optimal": plan.optimal,
        "gap": round(plan.gap, 6) if math.isfinite(plan.gap) else None,
    }


async def load_problem(
    conn: asyncpg.Connection, authority: str, request_ids: list[UUID] | None, k: int
) -> tuple[list[tuple[str, Need]], dict[str, list[Offer]], int, dict[str, float]]:
    """The authority's waiting requests (oldest decision first), each one's K nearest
    acceptable offers of the region, the number of offers, and the days each request has
    waited since its decision."""
    regions = await conn.fetchval(
        """
        SELECT array_agg(DISTINCT d.region_code)
          FROM authorities a JOIN departments d ON d.code = ANY(a.departments)
         WHERE a.code = $1
        """,
        authority,
    )
    if not regions:
        raise NotFound(f"Aucun département connu pour l'autorité {authority}.")
    requests = await conn.fetch(REQUESTS_SQL, authority, request_ids)
    rows = [("unit", r) for r in await conn.fetch(UNITS_SQL, regions)]
    rows += [("carer", r) for r in await conn.fetch(CARERS_SQL, regions, authority)]
    table = _Offers(rows)
    needs = [(str(r["id"]), _need(r)) for r in requests]
    offers_by_need = {
        rid: table.candidates(need, r["lat"], r["lon"], k)
        for (rid, need), r in zip(needs, requests, strict=True)
    }
    waited = {rid: float(r["waited_days"]) for (rid, _), r in zip(needs, requests, strict=True)}
    return needs, offers_by_need, len(rows), waited


async def run(
    pool: asyncpg.Pool, principal: Principal, body: OptimizeIn, settings: Settings
) -> dict[str, Any]:
    authority = resolve_authority(body.authority, body.department)
    if authority is None:
        raise field_error("authority", "requis (ou department, s'il n'a qu'une autorité)")
    require_authority_scope(principal, authority)
    async with pool.acquire() as conn:
        needs, offers_by_need, n_offers, waited = await load_problem(
            conn, authority, body.request_ids, body.candidates_per_request
        )
        if body.request_ids is not None:
            found = {rid for rid, _ in needs}
            missing = [str(i) for i in body.request_ids if str(i) not in found]
            if missing:
                raise Invalid(
                    f"request_ids: {len(missing)} demande(s) inconnue(s), d'une autre "
                    "autorité, ou qui n'attendent plus.",
                    errors=[{"field": "request_ids", "message": ", ".join(missing[:20])}],
                )
        await changes.audit(
            conn,
            principal,
            "assignment.optimize",
            "authority",
            authority,
            single_department(authority),
            {"request_ids": [rid for rid, _ in needs]},
            authority=authority,
        )
    # The solve runs off the event loop and without a connection: seconds of CPU must not
    # stall this worker's other requests nor hold a pooled connection.
    weights = Weights(settings.optimize_waiting_weight, settings.optimize_urgency_weight)
    best = await asyncio.to_thread(
        optimize,
        needs,
        offers_by_need,
        priority=body.priority,
        time_limit=settings.optimize_time_limit_seconds,
        gap=settings.optimize_gap,
        waited_days=waited,
        weights=weights,
    )
    fcfs = greedy(needs, offers_by_need, waited_days=waited, weights=weights)
    index = {rid: {o.key: o for o in offers} for rid, offers in offers_by_need.items()}
    return {
        "requests": len(needs),
        "children": sum(need.size for _, need in needs),
        "offers": n_offers,
        "weights": {"waiting": weights.waiting, "urgency": weights.urgency},
        "optimal": _plan_out(best, index, needs, waited),
        "greedy": _plan_out(fcfs, index, needs, waited),
        "gain": round(best.total - fcfs.total, 4),
        "objective_gain": round(best.objective - fcfs.objective, 4),
    }
