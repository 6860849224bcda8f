"""Registering an establishment and its units (admin): validated FINESS, real commune,
location in France; an audit entry and a ``structure.created`` event in the same transaction."""

from typing import Any

import asyncpg

from api import audit, outbox
from api.auth import Principal
from api.errors import Problem, field_error
from api.registry import repository
from api.registry.schemas import StructureIn
from geo.bounds import in_france
from geo.finess import is_valid_finess


def check_body(body: StructureIn) -> None:
    if not is_valid_finess(body.finess):
        raise field_error("finess", "numéro FINESS invalide (clé de contrôle de Luhn incorrecte)")
    if body.finess_ej is not None and not is_valid_finess(body.finess_ej):
        raise field_error("finess_ej", "numéro FINESS juridique invalide (clé de contrôle)")
    if body.location is not None and not in_france(body.location.lat, body.location.lon):
        raise field_error("location", "coordonnées hors de France (métropole et outre-mer)")
    for i, unit in enumerate(body.units):
        if unit.age_min > unit.age_max:
            raise field_error(f"units.{i}.age_min", "âge minimum supérieur à l'âge maximum")


async def register(pool: asyncpg.Pool, principal: Principal, body: StructureIn) -> dict[str, Any]:
    check_body(body)
    async with pool.acquire() as conn, conn.transaction():
        commune = await conn.fetchrow(
            "SELECT insee, department FROM communes WHERE insee = $1", body.commune
        )
        if commune is None:
            raise field_error("commune", f"commune INSEE {body.commune} inconnue")
        if await conn.fetchval("SELECT true FROM structures WHERE finess = $1", body.finess):
            raise Problem(409, f"Le FINESS {body.finess} est déjà enregistré.")
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
            """
            INSERT INTO units (structure_id, name, age_min, age_max, sexes, care_modes,
                               disability_profiles, installed)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            [
                (
                    structure_id,
                    u.name,
                    u.age_min,
                    u.age_max,
                    sorted(set(u.sexes)),
                    sorted(set(u.care_modes)),
                    sorted(set(u.disability_profiles)),
                    u.installed,
                )
                for u in body.units
            ],
        )
        created = await repository.structure_by_id(conn, structure_id)
        assert created is not None
        department = commune["department"]
        event = {
            "structure_id": str(structure_id),
            "finess": body.finess,
            "category": body.category,
            "units": len(body.units),
        }
        await outbox.emit(conn, "structure.created", department, event)
        await audit.record(
            conn, principal, "structure.create", "structure", str(structure_id), department
        )
    return created
