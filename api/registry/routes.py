"""Registry endpoints: departments, competent authorities, structures, foster carers."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api import precision
from api.auth import AnyPrincipal, Principal, require, scoped_authority
from api.authorities import AUTHORITY_MAX_LENGTH, resolve_authority
from api.codes import PDE_CATEGORIES
from api.deps import AuthorityFilter, DepartmentCode, IdempotencyHeader, Pool, idempotency
from api.errors import field_error
from api.registry import repository, service
from api.registry.schemas import (
    AuthorityOut,
    DepartmentOut,
    FosterCarerPage,
    StructureIn,
    StructureOut,
    StructurePage,
    UnitIn,
    UnitOut,
)
from api.responses import written
from geo.referential import load_authorities

router = APIRouter(prefix="/v1", tags=["registry"])


@router.get("/departments", response_model=list[DepartmentOut], summary="Every department")
async def list_departments(_: AnyPrincipal, pool: Pool) -> object:
    async with pool.acquire() as conn:
        return [dict(r) for r in await repository.departments(conn)]


@router.get(
    "/authorities",
    response_model=list[AuthorityOut],
    summary="Every competent authority (the scopes of placement services)",
)
async def list_authorities(_: AnyPrincipal) -> object:
    """Child protection is the competence of a collectivity: usually one department under its
    own code, but `69M` (Métropole de Lyon) and `69D` (Rhône) share 69, `20R` (Corse) covers
    2A and 2B, `6AE` (Alsace) 67 and 68. In department order; the codes every `authority`
    parameter accepts (from the committed referential, as `api.authorities` checks them)."""
    return [
        {"code": a.code, "name": a.name, "kind": a.kind, "departments": list(a.departments)}
        for a in load_authorities().values()
    ]


@router.get(
    "/structures",
    response_model=StructurePage,
    summary="Structures and their units",
    responses={
        422: {
            "description": "Unknown department, category or authority, or an authority that "
            "is not competent in the department given: `errors[0]` names the field."
        }
    },
)
async def list_structures(
    principal: AnyPrincipal,
    pool: Pool,
    department: DepartmentCode = None,
    category: Annotated[str | None, Query(examples=["177"])] = None,
    authority: Annotated[
        str | None,
        Query(
            max_length=AUTHORITY_MAX_LENGTH,
            examples=["69M"],
            description="Competent authority of the establishment (`69M`, `69D`, `20R`, "
            "`6AE`, `13`…; see GET /v1/authorities): `69M` lists the Métropole de Lyon's "
            "establishments only, not the rest of the Rhône's.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> object:
    """Geographic (`department`) or by competent authority (`authority`), or both (then the
    authority must be competent in the department). A lieu de vie et d'accueil (category
    462) is located at its commune's point (`location.precision: "commune"`) except for
    itself, the placement service of its authority and admin."""
    if category is not None and category not in PDE_CATEGORIES:
        raise field_error(
            "category", f"catégorie FINESS hors PDE ; attendu : {', '.join(PDE_CATEGORIES)}"
        )
    if authority is not None:
        authority = resolve_authority(authority, department)
    async with pool.acquire() as conn:
        if department is not None and not await repository.department_exists(conn, department):
            raise field_error("department", f"département {department} inconnu")
        items, total = await repository.structures(
            conn, department, category, limit, offset, authority=authority
        )
    return {"items": [precision.structure_out(i, principal) for i in items], "total": total}


@router.post(
    "/structures",
    response_model=StructureOut,
    status_code=201,
    summary="Register an establishment and its units (platform operator)",
    responses={
        409: {"description": "FINESS already registered."},
        422: {"description": "Bad FINESS key, unknown commune, location outside France…"},
    },
)
async def register_structure(
    principal: Annotated[Principal, Depends(require("registry.manage"))],
    pool: Pool,
    body: StructureIn,
) -> object:
    return await service.register(pool, principal, body)


@router.post(
    "/structures/{structure_id}/units",
    response_model=UnitOut,
    status_code=201,
    summary="Describe one of my units (establishment, or platform operator)",
    responses={
        403: {"description": "Another establishment's structure."},
        404: {"description": "Unknown structure."},
        428: {"description": "Idempotency-Key missing."},
    },
)
async def add_unit(
    request: Request,
    structure_id: UUID,
    principal: Annotated[Principal, Depends(require("unit.describe"))],
    pool: Pool,
    body: UnitIn,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Adds a unit (ages, sexes, care modes, disability profiles, installed places); it has
    no capacity until its first declaration. An establishment imported from FINESS starts
    with one default unit from its category: its first own unit replaces it."""
    key = idempotency(request, idempotency_key, required=True)
    assert key is not None
    answer = await service.add_unit(pool, principal, structure_id, body, key)
    return written(answer, {"Location": request.url.path})


@router.get(
    "/foster-carers",
    response_model=FosterCarerPage,
    summary="Foster carers of an authority (commune level only)",
    responses={
        403: {"description": "Another authority's carers."},
        422: {
            "description": "An unknown authority, or a `department` of several "
            "authorities (`69`): `errors[0]` names the field and lists the `choices`."
        },
    },
)
async def list_foster_carers(
    principal: Annotated[Principal, Depends(require("carers.read"))],
    pool: Pool,
    authority: AuthorityFilter,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> object:
    """The carers whose agrément the authority issued (the home's authority); a placement
    service reads its own. Each read is audited (`carer.list`)."""
    authority = scoped_authority(principal, authority)
    return await service.list_foster_carers(pool, principal, authority, limit, offset)
