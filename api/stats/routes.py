"""Aggregated statistics for national steering (contract: Statistics).

Roles national, department and admin. A department sees every department's figures too:
they are aggregates (counts of places, of requests, of days), never a child-level record,
and a placement service searching the whole country needs to know where the tension is.

Two views of the same figures: per department (geography, the map) and per competent
authority (issue 13: the Métropole de Lyon apart from the Rhône, Corse and Alsace as one).
"""

import csv
import io
from datetime import UTC, datetime
from numbers import Number
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.auth import Principal, require, require_authority_scope
from api.csvcells import safe_cell
from api.deps import AppSettings, DepartmentCode
from api.errors import NotFound
from api.reads import ReadPool
from api.settings import Settings
from api.stats import children, flows, offer, repository, service, trends
from api.stats.schemas import (
    AuthorityStats,
    AuthorityStatsPage,
    ChildrenStatsPage,
    CoveragePage,
    DepartmentStats,
    FlowsPage,
    OfferSeries,
    StatsHistoryOut,
    StatsPage,
    TrendsPage,
)
from geo.referential import load_authorities

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

Steering = Annotated[Principal, Depends(require("stats.read"))]
AuthorityCode = Annotated[
    str | None,
    Query(
        description="Code of a competent authority (69M, 69D, 20R, 6AE, 38…); an unknown "
        "code is refused with the list of valid ones.",
        examples=["69M"],
    ),
]
CSV_FIELDS = tuple(DepartmentStats.model_fields)
AUTHORITY_CSV_FIELDS = tuple(AuthorityStats.model_fields)
NATIONAL_AUTHORITY = {"authority": "FR", "name": "France entière", "kind": "", "departments": []}


def _page(
    settings: Settings, items: list[dict[str, Any]], exact: bool, **identity: Any
) -> dict[str, Any]:
    """The page of a table: its totals summed over the exact rows, then — unless ``exact``
    (an authority reading its own figures) — rows and totals as a national view publishes
    them (``repository.national_view``: no figure of requests or children)."""
    totals = repository.national_totals(items, **identity)
    if not exact:
        items = [repository.national_view(item) for item in items]
        totals = repository.national_view(totals)
    return {
        "items": items,
        "total": len(items),
        "totals": totals,
        "exact": exact,
        "generated_at": datetime.now(UTC),
        "stale_after_days": settings.stale_after_days,
        "unexecuted_after_days": settings.unexecuted_after_days,
    }


async def _stats(pool: Any, settings: Settings, department: str | None) -> dict[str, Any]:
    """The departments' table: always a national view (a department is not an authority:
    69 is two, 2A and 2B are one; an authority's exact figures are its own table's)."""
    async with pool.acquire() as conn:
        items = await repository.department_stats(
            conn, settings.stale_after_days, settings.unexecuted_after_days, department
        )
    if department is not None and not items:
        raise NotFound(f"Département {department} inconnu.")
    return _page(settings, items, exact=False)


def own_figures(principal: Principal, authority: str | None) -> bool:
    """An authority's services reading their own authority (``authority=`` naming it) get
    exact figures; everybody else — national roles, another authority — the national view."""
    return authority is not None and principal.for_authority and principal.authority == authority


async def _authority_stats(
    principal: Principal, pool: Any, settings: Settings, authority: str | None
) -> dict[str, Any]:
    service.check_authority(authority)
    async with pool.acquire() as conn:
        items = await repository.authority_stats(
            conn, settings.stale_after_days, settings.unexecuted_after_days, authority
        )
    exact = own_figures(principal, authority)
    return _page(settings, items, exact, **NATIONAL_AUTHORITY)


def _csv(fields: tuple[str, ...], items: list[dict[str, Any]], filename: str) -> Response:
    """``;``-separated, decimal comma, UTF-8 with a byte-order mark; lists joined by ``,``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(fields)
    for item in items:
        writer.writerow([_cell(item[name]) for name in fields])
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/departments",
    response_model=StatsPage,
    summary="Offer, demand, freshness and tension per department (aggregates only)",
    responses={404: {"description": "Unknown department (with `department=`)."}},
)
async def department_stats(
    _: Steering, pool: ReadPool, settings: AppSettings, department: DepartmentCode = None
) -> dict[str, Any]:
    """Every department (zeros where there is no offer), with national totals. Definitions,
    tension included, are in the schema's description and the README. A national view for
    every caller (#18, statistical secrecy): the figures of requests and children are null
    and the tension is the occupancy alone; children are counted, with secrecy, by
    ``/v1/stats/children``, and an authority's exact figures are
    ``/v1/stats/authorities?authority=`` for its own services."""
    return await _stats(pool, settings, department)


@router.get(
    "/departments.csv",
    summary="The same table as CSV (open data, spreadsheets)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "One line per department."},
        404: {"description": "Unknown department (with `department=`)."},
    },
)
async def department_stats_csv(
    _: Steering, pool: ReadPool, settings: AppSettings, department: DepartmentCode = None
) -> Response:
    """``;``-separated, decimal comma, UTF-8 with a byte-order mark: what a French spreadsheet
    opens as is. Columns are the JSON field names, in the same order."""
    page = await _stats(pool, settings, department)
    stamp = page["generated_at"].strftime("%Y-%m-%d")
    return _csv(CSV_FIELDS, page["items"], f"places-departements-{stamp}.csv")


@router.get(
    "/authorities",
    response_model=AuthorityStatsPage,
    summary="The same figures per competent authority (69M and 69D apart, 20R, 6AE…)",
)
async def authority_stats(
    principal: Steering, pool: ReadPool, settings: AppSettings, authority: AuthorityCode = None
) -> dict[str, Any]:
    """Every competent authority for child protection (100; zeros where there is no offer),
    with national totals, which equal the departments' totals: units are counted by their
    establishment's authority, carers by the authority of their home's commune, requests by
    the authority of their origin. The definitions are those of the department table. An
    unknown ``authority`` is refused (422) with the valid codes.

    Statistical secrecy (#18): the figures of requests and children are null and the
    tension is the occupancy alone (``exact`` false) — the children's counts are published
    with secrecy by ``/v1/stats/children`` — except for an authority's own services naming
    their authority (``authority=``), who get their figures exact (``exact`` true)."""
    return await _authority_stats(principal, pool, settings, authority)


@router.get(
    "/authorities.csv",
    summary="The authorities' table as CSV (spreadsheets)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per authority."}},
)
async def authority_stats_csv(
    principal: Steering, pool: ReadPool, settings: AppSettings, authority: AuthorityCode = None
) -> Response:
    """As ``/v1/stats/departments.csv``: ``;``-separated, decimal comma, UTF-8 with a
    byte-order mark, the JSON field names as columns; ``departments`` is ``,``-joined. The
    same secrecy as the JSON (a null is an empty cell)."""
    page = await _authority_stats(principal, pool, settings, authority)
    stamp = page["generated_at"].strftime("%Y-%m-%d")
    return _csv(AUTHORITY_CSV_FIELDS, page["items"], f"places-autorites-{stamp}.csv")


def _cell(value: Any) -> str:
    """Numbers as numbers (decimal comma), text escaped against formulas (``safe_cell``)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".replace(".", ",")
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, list):
        return safe_cell(",".join(str(v) for v in value))
    return safe_cell(str(value))


@router.get(
    "/history",
    response_model=StatsHistoryOut,
    summary="Free places at the end of each day, from the declaration history",
    responses={404: {"description": "Unknown department."}},
)
async def history(
    _: Steering,
    pool: ReadPool,
    department: DepartmentCode = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    authority: AuthorityCode = None,
) -> dict[str, Any]:
    """Establishments' free places (``current`` declarations and workflow moves) and active
    carers' free places, per day in the department's calendar (Paris for the whole country),
    of one department, of one competent authority (``authority=``: its units and carers, by
    their authority; not with ``department=``) or of the whole country. Today's point is the
    current figure."""
    service.check_history_scope(department, authority)
    async with pool.acquire() as conn:
        if department is not None and not await conn.fetchval(
            "SELECT true FROM departments WHERE code = $1", department
        ):
            raise NotFound(f"Département {department} inconnu.")
        timezone, items = await repository.history(conn, department, days, authority)
    return {
        "department": department,
        "authority": authority,
        "days": days,
        "timezone": timezone,
        "items": items,
    }


Window = Annotated[
    int,
    Query(
        ge=7,
        le=366,
        description="Days over which admissions and refusals count: in the national view "
        "30, 90 or 365, up to yesterday (statistical secrecy: any other is a 422); for the "
        "authority's own services any from 7 to 366, up to today.",
    ),
]


async def _children(pool: Any, authority: str | None, window_days: int) -> Any:
    """Exact figures; the national view's window (``authority`` None) ends yesterday."""
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    last_day = today if authority is not None else service.national_last_day(today)
    async with pool.acquire() as conn:
        rows, nation = await children.figures(conn, authority, today, window_days, last_day)
    return rows, nation, today, last_day


def _children_page(
    items: list[dict[str, Any]],
    totals: dict[str, Any],
    window_days: int,
    today: Any,
    last_day: Any,
) -> dict[str, Any]:
    return {
        "items": items,
        "totals": totals,
        "window_days": window_days,
        "window_last_day": last_day,
        "extracted_on": today,
        "generated_at": datetime.now(UTC),
    }


@router.get(
    "/children",
    response_model=ChildrenStatsPage,
    summary="Children waiting, not executed, where they wait, delays, refusals (national)",
)
async def children_stats(_: Steering, pool: ReadPool, window_days: Window = 90) -> dict[str, Any]:
    """Every authority's figures of children (not requests) with statistical secrecy: a
    count of 1–4 children is `null` and named in `suppressed` ("< 5"), with secondary
    suppression so that no hidden cell is its row's or column's total minus the others
    (docs/domain.md). National totals below 5 are hidden the same way. The window is one of
    30, 90 or 365 days ending yesterday (`window_last_day`): two other windows could be
    differenced into a day's hidden count (any other value is a 422 naming `window_days`)."""
    service.check_national_window(window_days)
    rows, nation, today, last_day = await _children(pool, None, window_days)
    totals = children.national_view({"FR": nation})[0]
    return _children_page(children.national_view(rows), totals, window_days, today, last_day)


@router.get(
    "/children/{authority}",
    response_model=ChildrenStatsPage,
    summary="The same figures, exact, for the authority's own services",
    responses={403: {"description": "Not this authority's own services."}},
)
async def authority_children_stats(
    principal: Steering, pool: ReadPool, authority: str, window_days: Window = 90
) -> dict[str, Any]:
    """The authority's own children, exact (no secrecy: they are its own); other roles read
    the national view."""
    code = service.check_authority(authority)
    assert code is not None
    require_authority_scope(principal, code)
    rows, _, today, last_day = await _children(pool, code, window_days)
    row = {**rows[code], "suppressed": []}
    return _children_page([row], row, window_days, today, last_day)


FlowWindow = Annotated[
    int,
    Query(
        ge=7,
        le=366,
        description="Days over which admissions count: in the national view 30, 90 or 365, "
        "up to yesterday (statistical secrecy: any other is a 422); for the authority's own "
        "services any from 7 to 366, up to today.",
    ),
]


def _flows_page(
    view: dict[str, Any], authority: str | None, window_days: int, today: Any, last_day: Any
) -> dict[str, Any]:
    return {
        **view,
        "authority": authority,
        "window_days": window_days,
        "window_last_day": last_day,
        "extracted_on": today,
        "generated_at": datetime.now(UTC),
    }


@router.get(
    "/flows",
    response_model=FlowsPage,
    summary="Children placed outside their authority: the origin → host matrix (national)",
)
async def flows_stats(_: Steering, pool: ReadPool, window_days: FlowWindow = 365) -> dict[str, Any]:
    """Children admitted over the window, by the authority in charge (origin) and the
    authority of the territory they were placed in (host), with statistical secrecy on the
    matrix and its margins as one table (docs/domain.md). The window is one of 30, 90 or
    365 days ending yesterday (`window_last_day`); any other is a 422 naming
    `window_days`."""
    service.check_national_window(window_days)
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    last_day = service.national_last_day(today)
    async with pool.acquire() as conn:
        cells = await flows.cells(conn, last_day, window_days)
    view = flows.national_view(cells, flows.authority_codes())
    return _flows_page(view, None, window_days, today, last_day)


@router.get(
    "/flows/{authority}",
    response_model=FlowsPage,
    summary="The authority's own row and column of the matrix, exact",
    responses={403: {"description": "Not this authority's own services."}},
)
async def authority_flows_stats(
    principal: Steering, pool: ReadPool, authority: str, window_days: FlowWindow = 365
) -> dict[str, Any]:
    """Its children placed elsewhere (by host) and the other authorities' children placed
    in its territory (by origin), exact: for the authority's own services only."""
    code = service.check_authority(authority)
    assert code is not None
    require_authority_scope(principal, code)
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    async with pool.acquire() as conn:
        cells = await flows.cells(conn, today, window_days, code)
    return _flows_page(flows.authority_view(cells, code), code, window_days, today, today)


@router.get(
    "/offer",
    response_model=OfferSeries,
    summary="Free places and tension by category, month by month (declaration history)",
)
async def offer_series(
    _: Steering,
    pool: ReadPool,
    months: Annotated[int, Query(ge=1, le=24, description="Months, the current included.")] = 12,
    authority: AuthorityCode = None,
) -> dict[str, Any]:
    """Per FINESS category (carers apart, `carer`), at the end of each month (Paris), the
    free and open places and the category's tension; the last month is the current one, as
    of now. Of the whole country, or of one authority (its units and carers)."""
    service.check_authority(authority)
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    async with pool.acquire() as conn:
        items = await offer.series(conn, today, months, authority)
    return {
        "authority": authority,
        "months": months,
        "items": items,
        "extracted_on": today,
        "generated_at": datetime.now(UTC),
    }


@router.get(
    "/trends",
    response_model=TrendsPage,
    summary="The monthly indicators over the closed months, with secrecy (national trends)",
)
async def trends_series(
    _: Steering,
    pool: ReadPool,
    months: Annotated[int, Query(ge=1, le=24, description="Closed months.")] = 12,
    authority: AuthorityCode = None,
) -> dict[str, Any]:
    """The lines of `/v1/opendata/monthly.csv` as JSON: France's (`FR`) per closed month,
    and with `authority=` that authority's too — its published values, secrecy applied
    across every authority as in the open data (a hidden value null, a change null beside a
    hidden value: docs/domain.md, "Secrecy over time")."""
    service.check_authority(authority)
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    async with pool.acquire() as conn:
        lines = await trends.lines(conn, today, months)
    wanted = {"FR", authority}
    return {
        "authority": authority,
        "months": months,
        "items": [trends.as_trend(line) for line in lines if line["authority"] in wanted],
        "extracted_on": today,
        "generated_at": datetime.now(UTC),
    }


@router.get(
    "/coverage",
    response_model=CoveragePage,
    summary="Declaration coverage and freshness per authority; tension only where it holds",
)
async def coverage_stats(
    principal: Steering,
    pool: ReadPool,
    settings: AppSettings,
    days: Annotated[
        int | None,
        Query(
            ge=1,
            le=366,
            description="Recent means declared in the last days (default: "
            "PLACES_STALE_AFTER_DAYS).",
        ),
    ] = None,
    min_coverage: Annotated[
        float, Query(ge=0, le=1, description="Below this share, the tension is not given.")
    ] = 0.5,
    authority: AuthorityCode = None,
) -> dict[str, Any]:
    """Every authority: units and carers (agrément valid today), those declared in the last
    `days` days, the shares, the latest declaration and its age. No declarations is not the
    same as no tension: where the coverage is below `min_coverage` the tension is null with
    `tension_reason` (docs/domain.md). The tension is that of `/v1/stats/authorities`:
    without the waiting list in a national view, with it for an authority's own services
    naming their authority (statistical secrecy)."""
    service.check_authority(authority)
    days = days or settings.stale_after_days
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    exact = own_figures(principal, authority)
    async with pool.acquire() as conn:
        covered = await offer.coverage(conn, days, authority, exact)
    order = {code: i for i, code in enumerate(load_authorities())}
    items = [
        offer.with_tension(item, min_coverage)
        for item in sorted(covered.values(), key=lambda i: order.get(i["authority"], len(order)))
    ]
    return {
        "items": items,
        "days": days,
        "min_coverage": min_coverage,
        "extracted_on": today,
        "generated_at": datetime.now(UTC),
    }
