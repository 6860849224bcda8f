"""``GET /v1/opendata/availability.csv``: the offer per department, competent authority and
FINESS category (one line per department × authority × category where the offer exists: the
Métropole de Lyon and the Rhône are distinct lines within 69, Corse and Alsace have one
authority over two departments).

Publishable as is: every figure is a sum over establishments' units (places installed,
occupied, reserved, free, from their ``current`` declarations) and the dates of the oldest
and latest of those declarations. Nothing is about a child, and assistants familiaux are
left out entirely: a carer is a person (their places are their home), and in a small
department a count of carers' free places could point at someone; the aggregated carer
figures stay in ``/v1/stats`` for authenticated steering. Establishments' capacities are not
personal data (FINESS is itself open data), so small counts are published, not suppressed.

Like every ``/v1`` call it needs a bearer token (any role); the file is meant to be fetched
by the publishing job and put on data.gouv.fr. Format: RFC 4180 CSV, comma-separated,
UTF-8 without byte-order mark, dates ISO 8601 in Paris time — the data.gouv.fr
recommendations (the spreadsheet-friendly ``;`` export is ``/v1/stats/departments.csv``).
"""

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.auth import AnyPrincipal
from api.csvcells import safe_cell
from api.opendata import monthly, repository
from api.reads import ReadPool
from matching.vocabulary import FINESS_CATEGORY_LABELS

router = APIRouter(prefix="/v1/opendata", tags=["open data"])
PARIS = ZoneInfo("Europe/Paris")

#: Column → meaning (the README repeats this table).
COLUMNS: dict[str, str] = {
    "department": "code du département (01…95, 2A, 2B, 971…976)",
    "department_name": "nom du département",
    "authority": "code de l'autorité compétente en protection de l'enfance (69M, 69D, 20R, 6AE,"
    " ou le code du département)",
    "authority_name": "nom de l'autorité compétente (Métropole de Lyon, Département du Rhône…)",
    "category": "catégorie FINESS de l'établissement (TRE_R66)",
    "category_label": "libellé de la catégorie",
    "structures": "établissements de cette catégorie dans le département et l'autorité",
    "units": "unités (services, groupes de vie) de ces établissements",
    "units_declared": "unités ayant déclaré leur capacité au moins une fois",
    "installed": "places installées (déclarations courantes)",
    "occupied": "places occupées",
    "reserved": "places réservées (enfant attendu)",
    "available": "places disponibles maintenant",
    "oldest_declaration": "date de la déclaration courante la plus ancienne (AAAA-MM-JJ)",
    "latest_declaration": "date de la déclaration courante la plus récente (AAAA-MM-JJ)",
}
EXAMPLE = (
    ",".join(COLUMNS)
    + "\r\n69,Rhône,69M,Métropole de Lyon,177,Maison d'enfants à caractère social (MECS),"
    "41,152,150,1480,1391,12,77,2026-11-02,2026-11-25\r\n"
)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(PARIS).date().isoformat()
    return "" if value is None else safe_cell(value)


@router.get(
    "/availability.csv",
    summary="Open data: places per department, authority and category (no child, no carer)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"example": EXAMPLE}},
            "description": "One line per department, competent authority and category with "
            "an establishment. " + "; ".join(f"`{k}`: {v}" for k, v in COLUMNS.items()),
        }
    },
)
async def availability_csv(_: AnyPrincipal, pool: ReadPool) -> Response:
    async with pool.acquire() as conn:
        rows = await repository.availability(conn)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        row["category_label"] = FINESS_CATEGORY_LABELS.get(row["category"], "")
        writer.writerow([_cell(row[name]) for name in COLUMNS])
    stamp = datetime.now(UTC).astimezone(PARIS).strftime("%Y-%m-%d")
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="places-disponibilites-{stamp}.csv"'
        },
    )


@router.get(
    "/monthly.csv",
    summary="Open data: monthly indicators per authority, with statistical secrecy",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "One line per closed month and competent authority (and FR); "
            "counts of children below 5 as `< 5`. Data dictionary: "
            "`/v1/opendata/monthly.schema.json`.",
        }
    },
)
async def monthly_csv(
    _: AnyPrincipal,
    pool: ReadPool,
    months: Annotated[int, Query(ge=1, le=24, description="Closed months published.")] = 12,
) -> Response:
    """RFC 4180, comma-separated, UTF-8 without byte-order mark, decimal point; every line
    carries the extraction date (``extracted_on``), as does the file name."""
    today = datetime.now(UTC).astimezone(PARIS).date()
    async with pool.acquire() as conn:
        lines = await monthly.rows(conn, today, months)
    names = [f["name"] for f in monthly.fields()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(names)
    for line in lines:
        line["extracted_on"] = today.isoformat()
        writer.writerow([_monthly_cell(name, line[name]) for name in names])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="places-mensuel-{today.isoformat()}.csv"'
        },
    )


def _monthly_cell(name: str, value: Any) -> Any:
    if value is None:
        if name in monthly.COUNTS:
            return monthly.SUPPRESSED
        return monthly.SUPPRESSED_CHANGE if name in monthly.CHANGE_FIELDS else ""
    if isinstance(value, float):
        return f"{value:g}"
    return safe_cell(value) if isinstance(value, str) else value


@router.get(
    "/monthly.schema.json",
    summary="The data dictionary of monthly.csv (Frictionless Table Schema)",
)
async def monthly_schema(_: AnyPrincipal) -> dict[str, Any]:
    """Fields in column order with their types and French descriptions; `< 5` and the empty
    cell are missing values."""
    return monthly.table_schema()
