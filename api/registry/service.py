"""Registering an establishment and its units (platform operator): validated FINESS, real commune,
location in France; an audit entry and a ``structure.created`` event in the same transaction.
An establishment then describes its own units (``add_unit``)."""

from typing import Any
from uuid import UUID

import asyncpg

from api import changes, disability, events, precision
from api.auth import Principal
from api.authorities import single_department
from api.changes import Idempotency, Written
from api.errors import Conflict, Forbidden, NotFound, field_error
from api.registry import repository
from api.registry.schemas import StructureIn, UnitIn, UnitOut
from geo.bounds import in_france
from geo.finess import is_valid_finess
from matching.vocabulary import (
    FINESS_CATEGORY_LABELS,
    PLACEMENT_SERVICE_CATEGORY,
    UNDER_3_CATEGORIES,
    UNDER_3_MAX_AGE_MONTHS,
)

NO_UNITS_MESSAGE = (
    "un service de placement familial (FINESS 236) n'a pas d'unité : ses places sont celles"
    " des assistants familiaux qu'il emploie"
)
"""Why a placement service gets no unit: a unit at its office would count its carers' places
twice and be proposed by search at the office's address (issue #15; the FINESS import gives
it no default unit either, ``interop.finess_units``)."""


def check_body(body: StructureIn) -> None:
    if not is_valid_finess(body.finess):
        raise field_error("finess", "numéro FINESS invalide (clé de contrôle de Luhn incorrecte)")
    if body.finess_ej is not None and not is_valid_finess(body.finess_ej):
        raise field_error("finess_ej", "numéro FINESS juridique invalide (clé de contrôle)")
    if body.location is not None and not in_france(body.location.lat, body.location.lon):
        raise field_error("location", "coordonnées hors de France (métropole et outre-mer)")
    if body.category == PLACEMENT_SERVICE_CATEGORY and body.units:
        raise field_error("units", NO_UNITS_MESSAGE)
    for i, unit in enumerate(body.units):
        check_under_3(body.category, unit, f"units.{i}.")


def check_under_3(category: str, unit: UnitIn, prefix: str = "") -> None:
    """A pouponnière (172) or a centre parental (166) takes children under 3 only (décret
    n° 74-58 of 15 January 1974; CASF L222-5 4° and L222-5-3): its units end at 35 months."""
    assert unit.age_max_months is not None
    if category in UNDER_3_CATEGORIES and unit.age_max_months > UNDER_3_MAX_AGE_MONTHS:
        label = FINESS_CATEGORY_LABELS.get(category, category)
        raise field_error(
            f"{prefix}age_max_months",
            f"{label} (FINESS {category}) : enfants de moins de 3 ans seulement, âge maximum"
            f" {UNDER_3_MAX_AGE_MONTHS} mois (donné : {unit.age_max_months})",
        )


async def register(pool: asyncpg.Pool, principal: Principal, body: StructureIn) -> dict[str, Any]:
    check_body(body)
    async with pool.acquire() as conn, conn.transaction():
        commune = await conn.fetchrow(
            "SELECT insee, department, authority FROM communes WHERE insee = $1", body.commune
        )
        if commune is None:
            raise field_error("commune", f"commune INSEE {body.commune} inconnue")
        if await conn.fetchval("SELECT true FROM structures WHERE finess = $1", body.finess):
            raise Conflict(f"Le FINESS {body.finess} est déjà enregistré.")
        structure_id = await conn.fetchval(
            """
            INSERT INTO structures (finess, finess_ej, name, category, department, commune,
                                    address, location)
            SELECT $1, $2, $3, $4, c.department, c.insee, $6,
                   CASE WHEN $7::float8 IS NULL THEN c.location
                        ELSE ST_SetSRID(ST_MakePoint($8, $7), 4326)::geography END
              FROM communes c
             WHERE c.insee = $5
            RETURNING id
            """,
            body.finess,
            body.finess_ej,
            body.name,
            body.category,
            body.commune,
            body.address,
            body.location.lat if body.location else None,
            body.location.lon if body.location else None,
        )
        await conn.executemany(
            INSERT_UNIT_SQL,
            [
                _unit_row(structure_id, u, f"units[{i}].disability")
                for i, u in enumerate(body.units)
            ],
        )
        created = await repository.structure_by_id(conn, structure_id)
        assert created is not None
        department = commune["department"]
        await changes.emit(
            conn,
            events.structure_created(
                department,
                str(structure_id),
                body.finess,
                body.category,
                len(body.units),
                "api",
                authority=commune["authority"],  # the structure's, set from its commune
            ),
        )
        await changes.audit(
            conn,
            principal,
            "structure.create",
            "structure",
            str(structure_id),
            department,
            authority=commune["authority"],
        )
    return precision.structure_out(created, principal)


INSERT_UNIT_SQL = """
INSERT INTO units (structure_id, name, age_min_months, age_max_months, sexes, timings, publics,
                   formulas, disability_specialised, disability_supported, installed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id, name, age_min_months, age_max_months, sexes, timings, publics, formulas,
          disability_specialised, disability_supported, installed
"""

# The unit a FINESS import gave the establishment from its category (0 places installed,
# never declared) stands in only until the establishment describes its own units; one that
# was declared on has become a real unit and stays.
RETIRE_DEFAULT_UNITS_SQL = """
DELETE FROM units u
 WHERE u.structure_id = $1 AND u.is_default AND u.id <> $2
   AND NOT EXISTS (SELECT 1 FROM capacity_snapshots cs WHERE cs.unit_id = u.id)
   AND NOT EXISTS (SELECT 1 FROM capacity_declarations cd WHERE cd.unit_id = u.id)
   AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.unit_id = u.id)
RETURNING u.id
"""


def _unit_row(structure_id: UUID, u: UnitIn, field: str = "disability") -> tuple[Any, ...]:
    """The unit's insert parameters; ``field`` names its ``disability`` in a 422."""
    specialised, supported = disability.levels(u.disability, u.disability_profiles, field)
    return (
        structure_id,
        u.name,
        u.age_min_months,
        u.age_max_months,
        sorted(set(u.sexes)),
        u.timings,
        u.publics,
        u.formulas,
        specialised,
        supported,
        u.installed,
    )


async def add_unit(
    pool: asyncpg.Pool,
    principal: Principal,
    structure_id: UUID,
    body: UnitIn,
    idempotency: Idempotency,
) -> Written:
    """A unit the establishment describes itself (its own, or any for the platform operator).
    The first one retires the default unit of a FINESS import; the unit starts undeclared."""
    async with pool.acquire() as conn, conn.transaction():
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        # Locked: two units added at once both see, and retire, the same default unit.
        structure = await conn.fetchrow(
            "SELECT finess, category, department, authority FROM structures"
            " WHERE id = $1 FOR UPDATE",
            structure_id,
        )
        if structure is None:
            raise NotFound(f"Établissement {structure_id} inconnu.")
        if principal.role == "structure" and principal.finess != structure["finess"]:
            raise Forbidden("Un établissement ne décrit que ses propres unités.")
        if structure["category"] == PLACEMENT_SERVICE_CATEGORY:
            raise field_error("category", NO_UNITS_MESSAGE)
        check_under_3(structure["category"], body)
        unit = await conn.fetchrow(INSERT_UNIT_SQL, *_unit_row(structure_id, body))
        unit_id = unit["id"]
        retired = [
            str(r["id"]) for r in await conn.fetch(RETIRE_DEFAULT_UNITS_SQL, structure_id, unit_id)
        ]
        units = await conn.fetchval(
            "SELECT count(*) FROM units WHERE structure_id = $1", structure_id
        )
        department = structure["department"]
        await changes.emit(
            conn,
            events.structure_updated(
                department,
                str(structure_id),
                structure["finess"],
                structure["category"],
                units,
                "api",
                unit_added=str(unit_id),
                units_retired=retired,
                authority=structure["authority"],
            ),
        )
        await changes.audit(
            conn,
            principal,
            "unit.create",
            "unit",
            str(unit_id),
            department,
            {"structure_id": str(structure_id), "retired": retired},
            authority=structure["authority"],
        )
        # A new unit has no snapshot until its first declaration.
        out = UnitOut(**dict(unit), capacity=None, forecasts=[]).model_dump(mode="json")
        return await changes.store(conn, principal, idempotency, Written(out, 201))


async def list_foster_carers(
    pool: asyncpg.Pool, principal: Principal, authority: str, limit: int, offset: int
) -> dict[str, Any]:
    """One page of an authority's carers, audited (``carer.list``: the filters and the carer
    ids returned, under the authority listed) in the read's transaction."""
    async with pool.acquire() as conn, conn.transaction():
        rows, total = await repository.foster_carers(conn, authority, limit, offset)
        items = [dict(r) for r in rows]
        await changes.audit(
            conn,
            principal,
            "carer.list",
            "foster_carer",
            f"list:{authority}",
            single_department(authority),
            {
                "limit": limit,
                "offset": offset,
                "carer_ids": [str(item["id"]) for item in items],
            },
            authority=authority,
        )
    return {"items": items, "total": total}
