"""Idempotency-Key handling for writes.

The key row is inserted first, inside the write's transaction: a concurrent request with the
same key waits on the unique index and then sees the committed response, so a replay never
writes twice. A failed write rolls back its key, so the client may retry with the same key.
"""

import hashlib
import json
from typing import Any

import asyncpg
from fastapi.responses import JSONResponse

from api.errors import Conflict, Invalid, PreconditionRequired

MAX_KEY_LENGTH = 200


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def check_key(key: str | None, *, required: bool) -> str | None:
    if key is None or key == "":
        if required:
            missing = PreconditionRequired if key is None else Invalid
            raise missing(
                "Idempotency-Key: en-tête requis pour cette écriture.",
                errors=[{"field": "Idempotency-Key", "message": "required"}],
            )
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid(
            f"Idempotency-Key: au plus {MAX_KEY_LENGTH} caractères imprimables.",
            errors=[{"field": "Idempotency-Key", "message": "invalid"}],
        )
    return key


async def claim(
    conn: asyncpg.Connection, principal_key: str, key: str, fingerprint: str
) -> JSONResponse | None:
    """Claim the key inside the current transaction; return the stored response to replay
    when the key was already used for the same request."""
    inserted = await conn.fetchval(
        """
        INSERT INTO idempotency_keys (principal, key, request_hash)
        VALUES ($1, $2, $3)
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING true
        """,
        principal_key,
        key,
        fingerprint,
    )
    if inserted:
        return None
    stored = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE principal = $1 AND key = $2",
        principal_key,
        key,
    )
    if stored is None or stored["status_code"] is None:
        raise Conflict("Idempotency-Key: une requête avec cette clé est en cours.")
    if stored["request_hash"] != fingerprint:
        raise Invalid(
            "Idempotency-Key: clé déjà utilisée pour une autre requête.",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different request"}],
        )
    return JSONResponse(
        stored["response"],
        status_code=stored["status_code"],
        headers={"Idempotent-Replayed": "true"},
    )


async def store(
    conn: asyncpg.Connection, principal_key: str, key: str, status: int, body: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4"
        " WHERE principal = $1 AND key = $2",
        principal_key,
        key,
        status,
        body,
    )
