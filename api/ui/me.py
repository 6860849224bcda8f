"""``GET /ui/api/moi``: the establishment or carer the signed-in user declares for.

The ``/v1`` API has no "my structure" read, and the declaration page needs one; the data is
the registry's. Who may read what is decided by the standard dependencies of ``api.auth``:
the national role declares nothing (``require_roles``), a placement service reads only the
carers of its authority (``require_authority_scope``); structure and carer roles always get
their own record, whatever they name.
"""

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api import precision
from api.auth import Principal, require, require_authority_scope
from api.capacity.repository import carer_by_id
from api.deps import Pool
from api.errors import NotFound, field_error
from api.registry.repository import structure_by_id
from api.registry.schemas import FosterCarerOut, StructureOut
from geo.referential import load_communes

router = APIRouter(tags=["pages"])

#: Who declares places: an establishment, a carer, an authority for its carers, the operator.
Declarant = Annotated[Principal, Depends(require("capacity.declare"))]


class DeclarantOut(BaseModel):
    """An establishment with its units and snapshots, or a carer (commune level)."""

    kind: Literal["structure", "carer"]
    structure: StructureOut | None = None
    carer: FosterCarerOut | None = None
    commune_name: str | None = None


@router.get(
    "/ui/api/moi",
    response_model=DeclarantOut,
    summary="The establishment or carer the signed-in user declares for (declaration page)",
    responses={
        403: {"description": "National role, or a scope that is not the caller's."},
        404: {"description": "Unknown FINESS or carer."},
    },
)
async def declarant(
    principal: Declarant,
    pool: Pool,
    finess: Annotated[str | None, Query(max_length=9)] = None,
    carer: Annotated[UUID | None, Query()] = None,
) -> dict[str, Any]:
    """Structure and carer roles get their own record; the platform operator names one
    (``finess`` or ``carer``); a placement service (or its administrator) names one of its
    authority's carers (it may declare for them)."""
    target_finess, target_carer = _declarant_scope(principal, finess, carer)
    async with pool.acquire() as conn:
        if target_finess is not None:
            structure_id = await conn.fetchval(
                "SELECT id FROM structures WHERE finess = $1", target_finess
            )
            structure = await structure_by_id(conn, structure_id) if structure_id else None
            if structure is None:
                raise NotFound(f"Aucun établissement enregistré sous le FINESS {target_finess}.")
            return {
                "kind": "structure",
                "structure": precision.structure_out(structure, principal),
                "commune_name": _commune_name(structure["commune"]),
            }
        assert target_carer is not None
        row = await carer_by_id(conn, target_carer)
    if row is None:
        raise NotFound("Assistant familial inconnu.")
    if principal.for_authority:
        require_authority_scope(principal, row["authority"])
    carer_out = {k: v for k, v in dict(row).items() if k != "authority"}
    return {"kind": "carer", "carer": carer_out, "commune_name": _commune_name(row["commune"])}


def _declarant_scope(
    principal: Principal, finess: str | None, carer: UUID | None
) -> tuple[str | None, UUID | None]:
    """The FINESS or carer id to read: the token's own, or the one the platform operator or
    an authority's function names (those may only name a carer)."""
    if principal.role == "structure":
        return principal.finess, None
    if principal.role == "carer":
        return None, UUID(principal.carer_id) if principal.carer_id else None
    if principal.role == "operator" and (finess or carer):
        return (finess.strip().upper() if finess else None), carer
    if principal.for_authority and carer is not None:
        return None, carer
    raise field_error("finess", "précisez ?finess=… (établissement) ou ?carer=… (AF)")


def _commune_name(insee: str) -> str | None:
    commune = load_communes().get(insee)
    return commune.name if commune else None
