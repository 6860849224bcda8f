"""Aggregated statistics for national steering (contract: Statistics).

Roles national, department and admin. A department sees every department's figures too:
they are aggregates (counts of places, of requests, of days), never a child-level record,
and a placement service searching the whole country needs to know where the tension is.
"""

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.auth import Principal, require_roles
from api.deps import AppSettings, Pool
from api.errors import NotFound
from api.settings import Settings
from api.stats import repository
from api.stats.schemas import DepartmentStats, StatsHistoryOut, StatsPage

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

Steering = Annotated[Principal, Depends(require_roles("national", "department"))]
DepartmentCode = Annotated[
    str | None,
    Query(pattern=r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$", examples=["69"]),
]
CSV_FIELDS = tuple(DepartmentStats.model_fields)


async def _stats(pool: Any, settings: Settings, department: str | None) -> dict[str, Any]:
    async with pool.acquire() as conn:
        items = await repository.department_stats(
            conn, settings.stale_after_days, settings.unexecuted_after_days, department
        )
    if department is not None and not items:
        raise NotFound(f"Département {department} inconnu.")
    return {
        "items": items,
        "total": len(items),
        "totals": repository.national_totals(items),
        "generated_at": datetime.now(UTC),
        "stale_after_days": settings.stale_after_days,
        "unexecuted_after_days": settings.unexecuted_after_days,
    }


@router.get(
    "/departments",
    response_model=StatsPage,
    summary="Offer, demand, freshness and tension per department (aggregates only)",
    responses={404: {"description": "Unknown department (with `department=`)."}},
)
async def department_stats(
    _: Steering, pool: Pool, settings: AppSettings, department: DepartmentCode = None
) -> dict[str, Any]:
    """Every department (zeros where there is no offer), with national totals. Definitions,
    tension included, are in the schema's description and the README."""
    return await _stats(pool, settings, department)


@router.get(
    "/departments.csv",
    summary="The same table as CSV (open data, spreadsheets)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per department."}},
)
async def department_stats_csv(
    _: Steering, pool: Pool, settings: AppSettings, department: DepartmentCode = None
) -> Response:
    """``;``-separated, decimal comma, UTF-8 with a byte-order mark: what a French spreadsheet
    opens as is. Columns are the JSON field names, in the same order."""
    page = await _stats(pool, settings, department)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for item in page["items"]:
        writer.writerow([_cell(item[name]) for name in CSV_FIELDS])
    stamp = page["generated_at"].strftime("%Y-%m-%d")
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="places-departements-{stamp}.csv"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".replace(".", ",")
    return str(value)


@router.get(
    "/history",
    response_model=StatsHistoryOut,
    summary="Free places at the end of each day, from the declaration history",
    responses={404: {"description": "Unknown department."}},
)
async def history(
    _: Steering,
    pool: Pool,
    department: DepartmentCode = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    """Establishments' free places (``current`` declarations and workflow moves) and active
    carers' free places, per day in the department's calendar (Paris for the whole country).
    Today's point is the current figure."""
    async with pool.acquire() as conn:
        if department is not None and not await conn.fetchval(
            "SELECT true FROM departments WHERE code = $1", department
        ):
            raise NotFound(f"Département {department} inconnu.")
        timezone, items = await repository.history(conn, department, days)
    return {"department": department, "days": days, "timezone": timezone, "items": items}
