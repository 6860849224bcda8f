"""Habilitations administered per authority, and a person's own session.

Who may grant what (``habilitations.manage``, see ``api.permissions``):

- an **authority administrator** grants and revokes, on their own authority only, every
  function but ``authority_admin`` and ``platform_operator``, and ``national_analyst`` (which
  belongs to no authority); an establishment's function names a FINESS whose establishment
  belongs to the authority, a carer's function a carer whose agrément it issued;
- the **platform operator** grants and revokes ``authority_admin`` on any authority, nothing
  else (operators and national analysts are made with ``places habilitation grant``).

Every grant and revocation is audited under the authority and sends ``NOTIFY places_persons``
in its transaction: every worker forgets its cached persons at commit, so a revocation applies
to the next request of the person, on any worker.
"""

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from api import changes
from api.auth import Principal
from api.authorities import single_department
from api.changes import Idempotency, Written
from api.errors import Conflict, Forbidden, NotFound, field_error
from api.permissions import ADMINISTRATIVE_FUNCTIONS, FUNCTIONS
from api.persons import repository
from api.persons.directory import Directory
from api.persons.schemas import HabilitationIn

OBJECT_TYPE = "habilitation"


def _may_manage(principal: Principal, authority: str, function: str | None) -> None:
    """403 unless ``principal`` administers ``function`` on ``authority`` (``function``
    None: reading the authority's list)."""
    if not principal.may("habilitations.manage"):
        raise Forbidden("Réservé aux administrateurs d'autorité et à l'opérateur de la plateforme.")
    if principal.role == "operator":
        if function in (None, "authority_admin"):
            return
        raise Forbidden(
            "L'opérateur de la plateforme n'habilite que les administrateurs d'autorité."
        )
    if principal.authority != authority:
        raise Forbidden(f"Hors du périmètre de l'administrateur (autorité {authority}).")
    if function in ADMINISTRATIVE_FUNCTIONS or function == "national_analyst":
        raise Forbidden(f"Un administrateur d'autorité n'habilite pas la fonction {function}.")


def habilitation_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "person": {
            "id": row["person_id"],
            "issuer": row["issuer"],
            "sub": row["sub"],
            "display_name": row["display_name"],
            "email": row["email"],
        },
        "function": row["function"],
        "function_label": FUNCTIONS[row["function"]].label,
        "authority": row["authority"],
        "finess": row["finess"],
        "carer_id": row["carer_id"],
        "granted_by": row["granted_by"],
        "granted_at": row["granted_at"],
        "revoked_by": row["revoked_by"],
        "revoked_at": row["revoked_at"],
    }


async def _known_authority(conn: asyncpg.Connection, authority: str) -> None:
    if not await conn.fetchval("SELECT true FROM authorities WHERE code = $1", authority):
        raise NotFound(f"Autorité inconnue : {authority}.")


async def _territory(
    conn: asyncpg.Connection, authority: str, body: HabilitationIn
) -> tuple[str | None, UUID | None]:
    """The FINESS or carer of the function, checked to belong to ``authority``."""
    role = FUNCTIONS[body.function].role
    if role == "structure":
        if body.carer_id is not None:
            raise field_error("carer_id", "sans objet pour une fonction d'établissement")
        if body.finess is None:
            raise field_error("finess", "requis pour une fonction d'établissement")
        finess = body.finess.upper()
        found = await conn.fetchval("SELECT authority FROM structures WHERE finess = $1", finess)
        if found != authority:
            raise field_error(
                "finess", f"aucun établissement de l'autorité {authority} sous {finess}"
            )
        return finess, None
    if role == "carer":
        if body.finess is not None:
            raise field_error("finess", "sans objet pour un assistant familial")
        if body.carer_id is None:
            raise field_error("carer_id", "requis pour un assistant familial")
        found = await conn.fetchval(
            "SELECT authority FROM foster_carers WHERE id = $1", body.carer_id
        )
        if found != authority:
            raise field_error("carer_id", f"aucun assistant familial de l'autorité {authority}")
        return None, body.carer_id
    for field, value in (("finess", body.finess), ("carer_id", body.carer_id)):
        if value is not None:
            raise field_error(field, "sans objet pour une fonction de l'autorité")
    return None, None


async def grant(
    pool: asyncpg.Pool,
    directory: Directory,
    principal: Principal,
    authority: str,
    body: HabilitationIn,
    default_issuer: str,
    idempotency: Idempotency | None,
) -> Written:
    _may_manage(principal, authority, body.function)
    request = body.model_dump(mode="json")
    async with pool.acquire() as conn:
        async with conn.transaction():
            replay = await changes.claim(conn, principal, idempotency, request)
            if replay is not None:
                return replay
            await _known_authority(conn, authority)
            finess, carer_id = await _territory(conn, authority, body)
            person_id = await repository.upsert_person(
                conn, body.issuer or default_issuer, body.sub, body.display_name, body.email
            )
            if await repository.live_duplicate(
                conn, person_id, body.function, authority, finess, carer_id
            ):
                raise Conflict("Cette personne détient déjà cette habilitation.")
            new_id = await repository.insert(
                conn, person_id, body.function, authority, finess, carer_id, principal.sub
            )
            await changes.audit(
                conn,
                principal,
                "habilitation.grant",
                OBJECT_TYPE,
                str(new_id),
                single_department(authority),
                {
                    "person_id": person_id,
                    "function": body.function,
                    "finess": finess,
                    "carer_id": str(carer_id) if carer_id else None,
                },
                authority=authority,
            )
            await repository.notify(conn)
            row = await repository.one(conn, new_id)
            assert row is not None
            written = await changes.store(
                conn, principal, idempotency, Written(_json(habilitation_out(row)), 201)
            )
        directory.invalidate()  # this worker at once; the others at the NOTIFY
    return written


async def revoke(
    pool: asyncpg.Pool,
    directory: Directory,
    principal: Principal,
    authority: str,
    habilitation_id: int,
) -> dict[str, Any]:
    """Revoke (idempotent: a revoked habilitation is answered as it is)."""
    _may_manage(principal, authority, None)
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await repository.one(conn, habilitation_id)
            if row is None or row["authority"] != authority:
                raise NotFound("Habilitation inconnue dans cette autorité.")
            _may_manage(principal, authority, row["function"])
            if row["revoked_at"] is None:
                await repository.revoke(conn, habilitation_id, principal.sub)
                await changes.audit(
                    conn,
                    principal,
                    "habilitation.revoke",
                    OBJECT_TYPE,
                    str(habilitation_id),
                    single_department(authority),
                    {"person_id": row["person_id"], "function": row["function"]},
                    authority=authority,
                )
                await repository.notify(conn)
                row = await repository.one(conn, habilitation_id)
                assert row is not None
        directory.invalidate()
    return habilitation_out(row)


async def list_habilitations(
    pool: asyncpg.Pool, principal: Principal, authority: str, include_revoked: bool
) -> dict[str, Any]:
    _may_manage(principal, authority, None)
    async with pool.acquire() as conn, conn.transaction():
        await _known_authority(conn, authority)
        rows = await repository.of_authority(conn, authority, include_revoked)
        await changes.audit(
            conn,
            principal,
            "habilitation.list",
            OBJECT_TYPE,
            "*",
            single_department(authority),
            {"count": len(rows), "include_revoked": include_revoked},
            authority=authority,
        )
    return {"items": [habilitation_out(r) for r in rows]}


async def sign_out_everywhere(
    pool: asyncpg.Pool, directory: Directory, principal: Principal
) -> dict[str, Any]:
    """Every token of the person issued before now stops working, on every worker."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            at = await repository.sign_out(conn, principal.issuer, principal.sub)
            await changes.audit(
                conn,
                principal,
                "person.sign_out_everywhere",
                "person",
                principal.sub,
                single_department(principal.authority),
                {},
                authority=principal.authority,
            )
            await repository.notify(conn)
        directory.invalidate()
    return {"signed_out_at": at}


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """The body as stored for replays (datetimes as ISO strings)."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(body))
    return loaded
