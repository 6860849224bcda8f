"""Search: resolve the origin, bring the process's index of the free offer up to date in the
search's transaction, then let matching/ walk its relaxation ladder, each step's candidates
read from the index.

matching/ is pure and synchronous; its one injection point ``fetch(step)`` is served from the
index (``api.search.offer_index``) without I/O, so the whole ladder runs on the event loop in
one go — no thread, no round trip per step (#16).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import asyncpg

from api import changes
from api.auth import Principal, require_authority_scope
from api.errors import field_error
from api.requests import repository as requests_repository
from api.requests.schemas import ORIGIN_DECIMALS, SchoolIn
from api.search import offer_index, places, repository
from api.search.repository import Origin
from api.search.schemas import OriginIn, SearchIn
from geo.bounds import in_france
from geo.referential import neighbours as department_neighbours
from matching import (
    STALE_AFTER_DAYS,
    Child,
    DisabilityService,
    Need,
    Offer,
    PlacedSibling,
    Point,
    Proposal,
    SearchResult,
    Step,
    disability,
    nearest_placed_sibling,
    school_distance_km,
    service_distance_km,
)
from matching import search as match
from matching.constraints import band_label
from matching.score import whole_km


def build_need(
    body: SearchIn,
    origin_department: str,
    separation_ordered: bool = False,
    min_distance_km: float | None = None,
    school: Point | None = None,
    siblings_placed: tuple[PlacedSibling, ...] = (),
    services: Sequence[DisabilityService | None] = (),
) -> Need:
    """The library's need. ``separation_ordered``, ``min_distance_km``, ``school`` and
    ``siblings_placed`` are the effective ones (the body's, else the request's:
    ``request_options``), resolved to public points (``api.search.places``), as are the
    children's disability ``services`` (one per child, in order; default none)."""
    children = tuple(
        Child(
            age_months=c.months,
            sex=c.sex,
            disability_profiles=frozenset(c.disability_profiles),
            mdph_notified=c.mdph_notified,
            disability_service=services[i] if i < len(services) else None,
        )
        for i, c in enumerate(body.children)
    )
    timing, public, formula = body.need_fields()
    return Need(
        children=children,
        timing=timing,
        public=public,
        formula=formula,
        parent_expecting=body.parent_expecting,
        urgency=body.urgency,
        origin_department=origin_department,
        separation_ordered=separation_ordered,
        min_distance_km=min_distance_km,
        school=school,
        siblings_placed=siblings_placed,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RequestOptions:
    """What a search takes from its placement request (``SearchIn.request_id``)."""

    separation_ordered: bool = False
    min_distance_km: float | None = None
    refused: tuple[tuple[str, str], ...] = ()
    school: Point | None = None
    siblings_placed: tuple[PlacedSibling, ...] = ()


async def request_options(
    conn: asyncpg.Connection, principal: Principal, body: SearchIn
) -> RequestOptions:
    """The effective separation, minimum distance, school and siblings placed (the body's, else
    the request's) and the offers that refused the request's holds. The request must be of the
    caller's authority (403), as when it is read; an unknown one is a 422 naming
    ``request_id``, an unknown school or sibling's place one naming ``school.commune`` or
    ``siblings_placed[i]``. Without the family's origin, the school's commune is the origin
    (``search_origin``) and is not scored a second time."""
    separation, min_km, refused = body.separation_ordered, body.min_distance_km, []
    school = body.school if body.origin is not None else None
    placed: list[PlacedSibling] = []
    if body.siblings_placed is not None:
        placed = await places.siblings_placed(conn, body.siblings_placed)
    if body.request_id is not None:
        row = await requests_repository.get(conn, body.request_id)
        if row is None:
            raise field_error("request_id", f"demande {body.request_id} inconnue")
        require_authority_scope(principal, row["authority"])
        if separation is None:
            separation = row["separation_ordered"]
        if min_km is None:
            min_km = row["min_distance_km"]
        refused = await requests_repository.refused_targets(conn, body.request_id)
        if school is None and body.school is None and row["school_commune"] is not None:
            school = SchoolIn(commune=row["school_commune"])
        if body.siblings_placed is None:
            placed = await places.recorded_siblings(conn, row["siblings_placed"])
    if min_km is not None and min_km >= body.max_distance_km:
        raise field_error(
            "min_distance_km",
            f"distance minimale ({min_km:g} km) supérieure ou égale au rayon demandé "
            f"({body.max_distance_km:g} km)",
        )
    point = None if school is None else await places.school_point(conn, school, "school.commune")
    return RequestOptions(bool(separation), min_km, tuple(refused), point, tuple(placed))


def search_origin(body: SearchIn) -> OriginIn:
    """The ladder's origin: the family's; without it the school's commune (issue #16: at
    least one origin). Neither is a 422 naming ``origin``."""
    if body.origin is not None:
        return body.origin
    if body.school is not None:
        return OriginIn(commune=body.school.commune)
    raise field_error("origin", "origine requise : commune ou point de la famille, ou école")


def rounded_point(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    """A point origin rounded the way requests store theirs (``ORIGIN_DECIMALS``, 0.01°,
    about a kilometre) before any distance is computed, for every kind of proposal: a
    distance then moves only when the origin crosses a 0.01° step, never with the metre
    steps of a bisection (issue #15). A commune origin is its commune's point already."""
    if lat is None or lon is None:
        return lat, lon
    return round(lat, ORIGIN_DECIMALS), round(lon, ORIGIN_DECIMALS)


async def resolve_origin(conn: asyncpg.Connection, body: SearchIn) -> Origin:
    """The origin of a search (``search_origin``): its commune's point, or the given point
    rounded to 0.01°."""
    o = search_origin(body)
    if o.lat is not None and o.lon is not None and not in_france(o.lat, o.lon):
        raise field_error("origin", "coordonnées hors de France (métropole et outre-mer)")
    lat, lon = rounded_point(o.lat, o.lon)
    origin = await repository.resolve_origin(conn, o.commune, lat, lon)
    if origin is None:
        field = "origin.commune" if body.origin is not None else "school.commune"
        raise field_error(field, f"commune INSEE {o.commune} inconnue")
    return origin


def proposal_out(p: Proposal, origin: Origin, need: Need | None = None) -> dict[str, Any]:
    """A proposal as the API shows it. With ``need``: the distances from its school and to its
    nearest sibling already placed, as the score used them (whole km for a carer or a lieu de
    vie: their points are their communes')."""
    o: Offer = p.offer
    school_km = None if need is None else school_distance_km(need, o)
    kids = [] if need is None else [need.children[i] for i in p.children]
    service_km = [d for c in kids if (d := service_distance_km(c, o)) is not None]
    levels = [lv for c in kids if (lv := disability.child_level(c, o)) is not None]
    placed = None if need is None else nearest_placed_sibling(need, o)
    structure = (
        {"id": o.structure_id, "name": o.structure_name, "finess": o.finess}
        if o.kind == "unit"
        else None
    )
    return {
        "target": {"kind": o.kind, "id": o.id},
        "structure": structure,
        "category": o.category,
        "department": o.department,
        "commune": o.commune,
        "outside_department": o.department != origin.department,
        # A carer's distance is to their commune's point and whole kilometres (SQL), as a
        # lieu de vie's; say so with no decimal that could suggest more.
        "distance_km": round(o.distance_km, 0 if o.kind == "carer" else 1),
        "free_places": o.free_places,
        "age_min_months": o.age_min_months,
        "age_max_months": o.age_max_months,
        "ages": band_label(o.age_min_months, o.age_max_months),
        "temporality": o.temporality,
        "declared_age_days": round(o.declared_age_days, 2),
        "children": list(p.children),
        "score": round(p.score, 4),
        "reasons": [
            {"criterion": r.criterion, "detail": r.detail, "contribution": round(r.contribution, 4)}
            for r in p.reasons
        ],
        "relaxed": list(p.relaxed),
        "disability_level": disability.worst(levels) if levels else None,
        "step": p.step,
        "stale": p.stale,
        "option": p.option,
        "siblings_distance_km": (
            None if p.siblings_distance_km is None else round(p.siblings_distance_km, 0)
        ),
        "school_distance_km": (
            None if school_km is None else round(school_km, 0 if whole_km(o) else 1)
        ),
        "siblings_placed_distance_km": None if placed is None else round(placed[0]),
        "disability_service_distance_km": (
            round(max(service_km), 0 if whole_km(o) else 1) if service_km else None
        ),
    }


ORIGIN_AUDIT_DECIMALS = ORIGIN_DECIMALS
"""A point origin is audited rounded to 0.01° (about a kilometre), never as given (it is
searched from rounded, too: ``rounded_point``)."""


def audit_detail(body: SearchIn, origin: Origin, result: SearchResult) -> dict[str, Any]:
    """What a search is audited with: the need's non-identifying summary (how many
    children, care mode, urgency, origin commune or rounded point) and what came of it
    (steps tried, counts); neither ages nor the offers returned, to keep the trail light."""
    where: dict[str, Any] = (
        {"origin_commune": origin.commune}
        if origin.commune is not None
        else {
            "origin_point": [
                round(origin.lat, ORIGIN_AUDIT_DECIMALS),
                round(origin.lon, ORIGIN_AUDIT_DECIMALS),
            ]
        }
    )
    return {
        "children": len(body.children),
        "timing": body.timing,
        "public": body.public,
        "formula": body.formula,
        **({"parent_expecting": True} if body.parent_expecting else {}),
        "urgency": body.urgency,
        **({"school_commune": body.school.commune} if body.school is not None else {}),
        **({"siblings_placed": len(body.siblings_placed)} if body.siblings_placed else {}),
        **({"request_id": str(body.request_id)} if body.request_id is not None else {}),
        **where,
        "origin_department": origin.department,
        "tried": result.tried,
        "proposals": len(result.proposals),
        "unmatched_children": len(result.unmatched_children),
    }


async def run_search(
    pool: asyncpg.Pool,
    principal: Principal,
    body: SearchIn,
    *,
    stale_after_days: float = STALE_AFTER_DAYS,
    read_pool: asyncpg.Pool | None = None,
) -> dict[str, Any]:
    """The search, then its audit entry (``search.run``): the entry is its one write, one
    statement, committed on the primary (``pool``) before the answer leaves. It belongs to
    the searching placement service's authority (without one: the origin's).
    ``read_pool``: where the search reads (the hot standby when close enough, api.reads);
    default ``pool``, and then search and audit share one transaction.
    ``stale_after_days``: the setting (``PLACES_STALE_AFTER_DAYS``)."""
    reads = read_pool or pool
    async with reads.acquire() as conn, conn.transaction(readonly=reads is not pool):
        options = await request_options(conn, principal, body)
        origin = await resolve_origin(conn, body)
        services = await places.disability_services(conn, body.children)
        # Carers closed to other authorities are proposed to their employer's only.
        origin = dataclasses.replace(origin, searcher=principal.authority or origin.authority)
        need = build_need(
            body,
            origin.department,
            options.separation_ordered,
            options.min_distance_km,
            options.school,
            options.siblings_placed,
            services,
        )
        neighbours = sorted(department_neighbours(origin.department))
        async with offer_index.turn():
            # Nothing is awaited from the refresh to the end of the matching: the index stays
            # as this transaction saw it (another search's refresh waits for its turn, and
            # the matching runs on the loop, not in a thread beside it).
            index, now = await offer_index.current(conn)
            view = index.view(need, origin, now)

            def fetch(step: Step) -> list[Offer]:
                return repository.fetch_offers(
                    view, need, step, neighbours, want=body.limit, exclude=options.refused
                )

            result: SearchResult = match(
                need,
                fetch,
                body.limit,
                body.max_distance_km,
                neighbours=neighbours,
                exclude=options.refused,
                stale_after_days=stale_after_days,
            )
        authority = principal.authority or origin.authority
        if reads is pool:
            await changes.audit(
                conn,
                principal,
                "search.run",
                "search",
                authority,
                origin.department,
                audit_detail(body, origin, result),
                authority=authority,
            )
    if reads is not pool:
        async with pool.acquire() as audit_conn:
            await changes.audit(
                audit_conn,
                principal,
                "search.run",
                "search",
                authority,
                origin.department,
                audit_detail(body, origin, result),
                authority=authority,
            )
    return {
        "proposals": [proposal_out(p, origin, need) for p in result.proposals],
        "relaxations": result.relaxations,
        "tried": result.tried,
        "rejected": result.rejected,
        "unmatched_children": result.unmatched_children,
        "origin_department": origin.department,
    }
