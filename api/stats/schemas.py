"""Bodies of the aggregated statistics (national steering): never a child-level field.

Two views with the same figures and definitions: per department (geography, for the map:
rows grouped by the ``department`` column of structures, carers and requests) and per
competent authority (issue 13: grouped by their ``authority`` column, so the Métropole de Lyon
and the Rhône are apart within 69, and Corse and Alsace each one row over two departments).
Each unit, carer and request is counted exactly once in each view, so both have the same
national totals. Below, "the department" reads "the authority" in the second view.

Definitions (also on the national dashboard and in the report of issue 6):

* ``installed``: places installed in the department's units (the registry's figure, kept equal
  to the last ``current`` declaration); ``occupied`` / ``reserved`` / ``available`` /
  ``closed`` / ``additional``: sums of the units' ``current`` snapshots.
* ``undeclared_units``: units that never declared; their places count as installed, not free.
* ``available_h24`` / ``available_h48`` / ``available_d7``: free places forecast, each unit's
  forecast for that horizon, or its current figure when it declared no forecast.
* ``carers_active``: assistants familiaux whose places are free today — agrément valid
  today (not suspended, withdrawn, expired nor yet to start) and not on leave today (the
  one SQL predicate of search, ``api.capacity.repository.carer_free_sql``);
  ``carer_places_available``: their declared free places (any other carer: none).
* ``requests_waiting``: placement requests in status ``waiting``; ``children_waiting``: the
  children they describe (a sibling group counts each child); ``oldest_waiting_days``: days
  since the decision of the oldest waiting request (null when nobody waits), in the
  department's own calendar; ``measures_not_executed``: requests waiting or held (not yet
  admitted) at least ``PLACES_UNEXECUTED_AFTER_DAYS`` days after their decision.
* ``declarations``: current unit snapshots plus active carers (what steering relies on);
  ``stale_declarations``: those declared more than ``PLACES_STALE_AFTER_DAYS`` days ago.
* ``open_places``: places that exist and can be used — per declared unit ``installed +
  additional − closed``, per undeclared unit ``installed``, plus the agrément capacity of
  active carers.
* ``tension`` = (``open_places`` − free places + ``children_waiting``) / ``open_places``,
  where free places = ``available`` + ``carer_places_available``. It is the occupancy rate
  (1 − free/open) plus the waiting list relative to the offer: 0.9 means one open place in
  ten is free and nobody waits; 1 means every place is taken (or as many children wait as
  places are free); above 1, children wait with no free place for them. Null when the
  department has no open place.

Statistical secrecy (#18): the tables are **national views** — the figures of requests and
children (``requests_waiting``, ``children_waiting``, ``oldest_waiting_days``,
``measures_not_executed``) null, ``tension`` without the waiting list (its occupancy part:
with ``open_places`` and the free places published, the full tension would give
``children_waiting`` back) — except the authorities' table read by an authority's own
services for their authority (``authority=``, ``exact`` true). Children are counted, with
secrecy, by ``/v1/stats/children``.
"""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE: dict[str, Any] = {
    "department": "69",
    "name": "Rhône",
    "region_code": "84",
    "units": 58,
    "undeclared_units": 1,
    "installed": 742,
    "occupied": 690,
    "reserved": 6,
    "available": 31,
    "closed": 15,
    "additional": 0,
    "available_h24": 33,
    "available_h48": 35,
    "available_d7": 40,
    "carers": 640,
    "carers_active": 602,
    "carer_places_available": 38,
    "requests_waiting": 12,
    "children_waiting": 15,
    "oldest_waiting_days": 41,
    "measures_not_executed": 3,
    "declarations": 659,
    "stale_declarations": 48,
    "open_places": 1920,
    "tension": 0.971,
}
AUTHORITY_EXAMPLE: dict[str, Any] = {
    "authority": "69M",
    "name": "Métropole de Lyon",
    "kind": "metropole",
    "departments": ["69"],
    **{k: v for k, v in EXAMPLE.items() if k not in ("department", "name", "region_code")},
}


class StatsFigures(BaseModel):
    """The figures of one territory (a department, an authority) or of the whole country;
    the definitions are the module's docstring."""

    units: int
    undeclared_units: int
    installed: int
    occupied: int
    reserved: int
    available: int
    closed: int
    additional: int
    available_h24: int
    available_h48: int
    available_d7: int
    carers: int
    carers_active: int
    carer_places_available: int
    requests_waiting: int | None = Field(
        description="Null in a national view (exact for the authority's own services)."
    )
    children_waiting: int | None = Field(
        description="Null in a national view: children are counted, with statistical "
        "secrecy, by /v1/stats/children."
    )
    oldest_waiting_days: int | None = Field(
        description="Null when nobody waits, and in a national view."
    )
    measures_not_executed: int | None = Field(
        description="Null in a national view (see not_executed in /v1/stats/children)."
    )
    declarations: int
    stale_declarations: int
    open_places: int
    tension: float | None = Field(
        description="(open_places − free places + children_waiting) / open_places; in a "
        "national view without the waiting list: (open_places − free places) / open_places; "
        "null without open places."
    )


class _DepartmentKey(BaseModel):
    department: str
    name: str
    region_code: str


class _AuthorityKey(BaseModel):
    authority: str = Field(description="Code of the competent authority (69M, 20R, 38…).")
    name: str
    kind: str = Field(
        description="departement, metropole, collectivite_unique, collectivite_europeenne or "
        "ville_departement (empty in the national totals)."
    )
    departments: list[str] = Field(
        description="The departments it covers, in part (69M, 69D) or whole (empty in the "
        "national totals)."
    )


# pydantic orders inherited fields from the last base to the first: the key (department or
# authority) comes first, then the figures — the JSON and CSV column order.
class DepartmentStats(StatsFigures, _DepartmentKey):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})


class AuthorityStats(StatsFigures, _AuthorityKey):
    """The same figures per competent authority: units of its establishments, its carers
    (placed by the commune of their home) and the requests placed by their origin."""

    model_config = ConfigDict(json_schema_extra={"examples": [AUTHORITY_EXAMPLE]})


class StatsPage(BaseModel):
    items: list[DepartmentStats]
    total: int
    totals: DepartmentStats = Field(description="The same figures for the whole country.")
    exact: bool = Field(
        description="True for an authority's own services reading their authority "
        "(`authority=`): every figure exact. False for a national view (statistical "
        "secrecy, docs/domain.md): the figures of requests and children null, the tension "
        "without the waiting list."
    )
    generated_at: datetime
    stale_after_days: int
    unexecuted_after_days: int


class AuthorityStatsPage(BaseModel):
    items: list[AuthorityStats]
    total: int
    totals: AuthorityStats = Field(
        description="The same figures for the whole country (authority FR, kind and "
        "departments empty); equal to the departments' totals."
    )
    exact: bool = Field(
        description="True for an authority's own services reading their authority "
        "(`authority=`): every figure exact. False for a national view (statistical "
        "secrecy, docs/domain.md): the figures of requests and children null, the tension "
        "without the waiting list."
    )
    generated_at: datetime
    stale_after_days: int
    unexecuted_after_days: int


class StatsHistoryPoint(BaseModel):
    day: date
    unit_places_available: int
    carer_places_available: int
    available: int


class StatsHistoryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "department": "69",
                    "authority": None,
                    "days": 2,
                    "timezone": "Europe/Paris",
                    "items": [
                        {
                            "day": "2026-11-24",
                            "unit_places_available": 30,
                            "carer_places_available": 40,
                            "available": 70,
                        },
                        {
                            "day": "2026-11-25",
                            "unit_places_available": 31,
                            "carer_places_available": 38,
                            "available": 69,
                        },
                    ],
                }
            ]
        }
    )
    department: str | None
    authority: str | None = Field(
        None, description="The competent authority asked for (``authority=``), else null."
    )
    days: int
    timezone: str
    items: list[StatsHistoryPoint]


class ExecutionDelay(BaseModel):
    """Days from the decision (``decided_on``) to the admission, over the admissions of the
    window (Paris days)."""

    median: float | None = Field(
        description="Null without admissions; in the national view, below 5 admissions too."
    )
    p90: float | None = Field(
        description="Null without admissions; in the national view, below 10 admissions too."
    )
    admissions: int | None = Field(
        description='Admissions of the window; in the national view null when hidden ("< 5").'
    )


class ChildrenStats(BaseModel):
    """Figures of children, not requests (#18; glossary in docs/domain.md). In the national
    view a count of 1–4 children is ``null`` and named in ``suppressed`` (shown "< 5"), with
    secondary suppression."""

    authority: str
    children_waiting: int | None = Field(
        description="Children with a waiting or held request (one per child key)."
    )
    not_executed: dict[str, int | None] = Field(
        description="Children still waiting 15 / 30 / 90 days or more after the decision."
    )
    situations: dict[str, int | None] = Field(
        description="Children waiting, by current waiting situation."
    )
    execution_delay_days: ExecutionDelay
    refusals_by_reason: dict[str, int | None] = Field(
        description="Refusals of holds in the window, by coded reason; in the national view "
        'null when hidden by secrecy ("< 5").'
    )
    refusals_by_category: dict[str, int | None] = Field(
        description="Refusals of holds in the window, by FINESS category of the unit, or "
        "`carer`; in the national view every category refused somewhere, null when hidden."
    )
    suppressed: list[str] = Field(
        default_factory=list, description='Fields hidden by statistical secrecy ("< 5").'
    )


class ChildrenStatsPage(BaseModel):
    items: list[ChildrenStats]
    totals: ChildrenStats
    window_days: int
    window_last_day: date = Field(
        description="The window's last day (Paris), included: yesterday in the national "
        "view, today in the authority's own."
    )
    extracted_on: date = Field(description="The day the figures were extracted (Paris).")
    generated_at: datetime


class FlowCell(BaseModel):
    """Children of ``origin`` admitted in ``host``'s territory over the window (#18)."""

    origin: str = Field(description="The authority in charge of the child (the request's).")
    host: str = Field(
        description="The authority of the territory the child was placed in: the unit's "
        "establishment's commune, or the assistant familial's home commune."
    )
    children: int | None = Field(description='Children; null when hidden by secrecy ("< 5").')


class FlowOrigin(BaseModel):
    authority: str
    outside: int | None = Field(description="Its children placed in another authority.")
    inside: int | None = Field(description="Its children placed in its own territory.")


class FlowHost(BaseModel):
    authority: str
    from_outside: int | None = Field(description="Children of other authorities it hosts.")


class FlowTotal(BaseModel):
    outside: int | None
    inside: int | None


class FlowsPage(BaseModel):
    """The origin → host matrix of children placed outside their authority (glossary:
    docs/domain.md, "Placements outside the authority")."""

    authority: str | None = Field(
        None, description="The authority whose row and column these are (exact), else null."
    )
    cells: list[FlowCell] = Field(description="Non-zero (or hidden) cells, origin ≠ host.")
    origins: list[FlowOrigin]
    hosts: list[FlowHost]
    total: FlowTotal
    window_days: int
    window_last_day: date = Field(
        description="The window's last day (Paris), included: yesterday in the national "
        "view, today in the authority's own."
    )
    extracted_on: date = Field(description="The day the figures were extracted (Paris).")
    generated_at: datetime


class OfferFigures(BaseModel):
    free: int = Field(description="Free places at the end of the month (now for the current).")
    open: int = Field(
        description="Open places: installed + additional − closed (units), agrément capacity "
        "of carers declared active."
    )
    tension: float | None = Field(description="1 − free / open; null without open places.")


class OfferMonth(BaseModel):
    month: str = Field(description="YYYY-MM (Paris).")
    current: bool = Field(description="The current month, as of now (its end is not reached).")
    categories: dict[str, OfferFigures] = Field(
        description="Per FINESS category of establishment, and `carer` for assistants familiaux."
    )


class OfferSeries(BaseModel):
    """Free places and tension by category, month by month, from the declaration history
    (docs/domain.md, "Offer over time")."""

    authority: str | None
    months: int
    items: list[OfferMonth]
    extracted_on: date
    generated_at: datetime


class Coverage(BaseModel):
    """How far an authority's figures rest on recent declarations (#18)."""

    authority: str
    units: int
    units_declared: int = Field(description="Units with a current declaration (ever).")
    units_recent: int = Field(description="Units declared in the last `days` days.")
    carers: int = Field(description="Assistants familiaux whose agrément is valid today.")
    carers_recent: int = Field(description="Those declared in the last `days` days.")
    units_coverage: float | None
    carers_coverage: float | None
    coverage: float | None = Field(
        description="(units_recent + carers_recent) / (units + carers); null without offer."
    )
    latest_declaration: datetime | None
    latest_age_days: int | None = Field(description="Days since the latest declaration.")
    tension: float | None = Field(
        description="The authority's tension (as in /v1/stats/authorities), null with a reason "
        "when its declarations cannot carry it."
    )
    tension_reason: str | None = Field(
        description="no_offer, no_declarations, declarations_stale (coverage below "
        "`min_coverage`); null when the tension is given."
    )


class CoveragePage(BaseModel):
    items: list[Coverage]
    days: int
    min_coverage: float
    extracted_on: date
    generated_at: datetime


class TrendLine(BaseModel):
    """One closed month of one authority (or ``FR``), as the monthly open data publishes it
    (docs/domain.md, "Open data of steering"): counts of children null when hidden by
    secrecy ("< 5"), changes null when either month's value is hidden."""

    month: str = Field(description="YYYY-MM (Paris), a closed month.")
    authority: str = Field(description="Authority code, or FR for the whole country.")
    authority_name: str
    children_waiting: int | None
    not_executed_30: int | None
    children_waiting_change: int | None = Field(
        description="Change from the month before; null when either value is hidden."
    )
    not_executed_30_change: int | None
    placements_outside: int | None
    execution_delay_median: float | None = Field(
        description="Days from decision to admission, median of the month's admissions (5 or "
        "more); for FR, of every admission of the month."
    )
    execution_delay_p90: float | None = Field(
        description="90th percentile of the same delays (10 admissions or more)."
    )
    free_places: dict[str, int] = Field(
        description="Establishments' free places at the end of the month per FINESS category."
    )


class TrendsPage(BaseModel):
    authority: str | None = Field(
        description="The authority whose lines are given beside FR's, else null (FR only)."
    )
    months: int
    items: list[TrendLine] = Field(description="Oldest month first; FR after the authority.")
    extracted_on: date
    generated_at: datetime
