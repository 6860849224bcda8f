"""Commune names and centres from the committed referential, for the maps.

Carers appear on the maps at their commune's centre, never at their home: the pages ask
here for the communes they need (a department's, an authority's, or a list of INSEE codes).
"""

import json
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.errors import field_error
from geo.referential import Commune, load_communes

router = APIRouter(tags=["pages"])


@cache
def communes_of(code: str) -> tuple[Commune, ...]:
    """A department's communes (the referential holds 35,000; pages ask per department)."""
    return tuple(c for c in load_communes().values() if c.department == code)


@cache
def communes_of_authority(code: str) -> tuple[Commune, ...]:
    """A competent authority's communes (``69M``: the Métropole de Lyon's 59, not the Rhône's)."""
    return tuple(c for c in load_communes().values() if c.authority == code)


@router.get(
    "/ui/geo/communes",
    summary="Commune names and centres (committed referential), for the maps",
    responses={422: {"description": "Neither department, authority nor insee."}},
)
async def communes(
    department: Annotated[str | None, Query(max_length=3)] = None,
    insee: Annotated[str | None, Query(max_length=12_000)] = None,
    authority: Annotated[str | None, Query(max_length=3)] = None,
) -> Response:
    """Public reference data (COG, GeoNames): cacheable, no token needed. Carers appear on
    the maps at their commune's centre, never at their home."""
    table = load_communes()
    if department:
        rows = list(communes_of(department))
    elif authority:
        rows = list(communes_of_authority(authority))
    elif insee:
        codes = [code for code in insee.split(",") if code][:2000]
        rows = [table[code] for code in codes if code in table]
    else:
        raise field_error("department", "department, authority ou insee requis")
    body = {
        "items": [
            {
                "insee": c.insee,
                "name": c.name,
                "department": c.department,
                "authority": c.authority,
                "lat": c.lat,
                "lon": c.lon,
                "population": c.population,
            }
            for c in rows
        ]
    }
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=86400"},
    )
