"""A carer's availability: the carer row is the snapshot, ``carer_declarations`` the history."""

from datetime import date
from uuid import UUID

import asyncpg
from fastapi.responses import JSONResponse

from api import audit, idempotency, outbox
from api.auth import Principal
from api.carers.schemas import AvailabilityIn
from api.errors import Conflict, Forbidden, NotFound, field_error
from api.registry.repository import CARER_PUBLIC_COLUMNS
from api.registry.schemas import FosterCarerOut


def check_may_declare(principal: Principal, carer: asyncpg.Record) -> None:
    if principal.role == "admin":
        return
    if principal.role == "carer" and principal.carer_id == str(carer["id"]):
        return
    if principal.role == "department" and principal.department == carer["department"]:
        return
    raise Forbidden("Seul l'assistant familial ou son département employeur peut déclarer.")


def check_body(body: AvailabilityIn, agrement_capacity: int, taken: int = 0) -> None:
    """``taken``: places held or occupied through Places (holds ``held`` or ``admitted``):
    a carer cannot declare them free again without the workflow releasing them."""
    if body.available_places > agrement_capacity:
        raise field_error(
            "available_places",
            f"{body.available_places} places déclarées pour un agrément de {agrement_capacity}",
        )
    if body.available_places > agrement_capacity - taken:
        raise field_error(
            "available_places",
            f"{taken} place(s) réservée(s) ou occupée(s) via Places sur un agrément de "
            f"{agrement_capacity} : au plus {agrement_capacity - taken} disponible(s)",
        )
    if body.until is not None and body.until < date.today():
        raise field_error("until", "date passée")
    if body.status == "active" and body.until is not None:
        raise field_error("until", "seulement pour un congé ou une suspension")


async def declare(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: AvailabilityIn,
    key: str | None,
    if_match: int | None,
) -> JSONResponse:
    fingerprint = idempotency.request_hash(
        "PUT", f"/v1/foster-carers/{carer_id}/availability", body.model_dump(mode="json")
    )
    async with pool.acquire() as conn, conn.transaction():
        carer = await conn.fetchrow(
            "SELECT id, department, agrement_capacity, version FROM foster_carers"
            " WHERE id = $1 FOR UPDATE",
            carer_id,
        )
        if carer is None:
            raise NotFound(f"Assistant familial {carer_id} inconnu.")
        check_may_declare(principal, carer)
        if key is not None:
            replay = await idempotency.claim(conn, principal.key, key, fingerprint)
            if replay is not None:
                return replay
        if if_match is not None and if_match != carer["version"]:
            raise Conflict(
                f"Version périmée : version courante {carer['version']}, If-Match {if_match}.",
                current_version=carer["version"],
            )
        taken = await conn.fetchval(
            "SELECT coalesce(sum(places), 0) FROM holds"
            " WHERE carer_id = $1 AND status IN ('held', 'admitted')",
            carer_id,
        )
        check_body(body, carer["agrement_capacity"], taken)
        row = await conn.fetchrow(
            f"""
            UPDATE foster_carers
               SET available_places = $2, status = $3, status_until = $4,
                   version = version + 1, declared_at = now(), declared_by = $5
             WHERE id = $1
         RETURNING {CARER_PUBLIC_COLUMNS}
            """,
            carer_id,
            body.available_places,
            body.status,
            body.until,
            principal.sub,
        )
        await conn.execute(
            """
            INSERT INTO carer_declarations
                   (carer_id, available_places, status, status_until, version, declared_at,
                    declared_by, source)
            VALUES ($1, $2, $3, $4, $5, now(), $6, 'api')
            """,
            carer_id,
            body.available_places,
            body.status,
            body.until,
            row["version"],
            principal.sub,
        )
        carer_out = FosterCarerOut.model_validate(dict(row)).model_dump(mode="json")
        await outbox.emit(conn, "carer.availability_updated", carer["department"], carer_out)
        await audit.record(
            conn,
            principal,
            "carer.declare",
            "foster_carer",
            str(carer_id),
            carer["department"],
            {"version": row["version"]},
        )
        if key is not None:
            await idempotency.store(conn, principal.key, key, 200, carer_out)
    return JSONResponse(carer_out, headers={"ETag": f'"{carer_out["version"]}"'})
