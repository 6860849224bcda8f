"""The one path of every write: the Idempotency-Key claim and the response kept for replays,
the audit entry, and the outbox event with its NOTIFY — in the write's own transaction, so
that a change, its trail and its event exist together or not at all.

Each row is written by one SQL template below. The helpers run a template alone; the
capacity hot path (``api.capacity.repository.DECLARE_SQL``) composes the same templates into
its single statement, and a test checks that both write the same rows. Services receive and
return plain data (``Idempotency``, ``Written``); the routes make the HTTP answers.

Idempotency: the key row is inserted first, inside the transaction; a concurrent request
with the same key waits on the unique index and then sees the committed response, so a
replay never writes twice. A failed write rolls back its key, so the client may retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from api.errors import Conflict, Invalid
from api.events import Event

if TYPE_CHECKING:  # api.auth depends on api.deps, which depends on this module
    from api.auth import Principal

#: LISTEN/NOTIFY channel that wakes the outbox relay; the payload is the event's department.
CHANNEL = "places_outbox"

# The templates: ``{name}`` placeholders are bound to SQL expressions (``$n`` parameters,
# ``now()``…) by ``bind``. One template per row kind, used by every writer.
INSERT_EVENT = """
INSERT INTO outbox_events (type, department, authority, occurred_at, data, national_data)
VALUES ({type}, {department}, {authority}, {occurred_at}, {data}, {national})
"""
NOTIFY = "pg_notify({channel}, {department})"
INSERT_AUDIT = """
INSERT INTO audit_entries (occurred_at, actor, role, action, object_type, object_id,
                           department, authority, detail, person_id, function, actor_authority)
VALUES ({occurred_at}, {actor}, {role}, {action}, {object_type}, {object_id},
        {department}, {authority}, {detail}, {person_id}, {function}, {actor_authority})
"""
CLAIM_KEY = """
INSERT INTO idempotency_keys (principal, key, request_hash)
VALUES ({principal}, {key}, {request_hash})
ON CONFLICT (principal, key) DO NOTHING
RETURNING true
"""
STORE_RESPONSE = """
UPDATE idempotency_keys SET status_code = {status}, response = {body}
 WHERE principal = {principal} AND key = {key}
"""


def bind(template: str, **expressions: str) -> str:
    """The template with each placeholder replaced by its SQL expression."""
    return template.format(**expressions).strip()


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A write's Idempotency-Key and what it is for: the route's method and path (the
    ``scope``), so that the same key sent to another operation is refused, not replayed."""

    key: str
    scope: str

    def fingerprint(self, body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(f"{self.scope}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Written:
    """What a write answers: its body and status, and whether it is the replay of an
    earlier answer (then nothing was written this time)."""

    body: dict[str, Any]
    status: int = 200
    replayed: bool = False


_EMIT_SQL = (
    "WITH event AS ("
    + bind(
        INSERT_EVENT,
        type="$1",
        department="$2::text",
        authority="$6",
        occurred_at="now()",
        data="$3",
        national="$4",
    )
    + " RETURNING id) SELECT id FROM event, "
    + bind(NOTIFY, channel="$5::text", department="$2::text")
)
_AUDIT_SQL = bind(
    INSERT_AUDIT,
    occurred_at="now()",
    actor="$1",
    role="$2",
    action="$3",
    object_type="$4",
    object_id="$5",
    department="$6",
    authority="$8",
    detail="$7",
    person_id="$9",
    function="$10",
    actor_authority="$11",
)
_CLAIM_SQL = bind(CLAIM_KEY, principal="$1", key="$2", request_hash="$3")
_STORE_SQL = bind(STORE_RESPONSE, principal="$1", key="$2", status="$3", body="$4")


async def emit(conn: asyncpg.Connection, event: Event) -> int:
    """Write one event (with its authority: the feed it goes to); its NOTIFY fires only at
    commit."""
    event_id: int = await conn.fetchval(
        _EMIT_SQL,
        event.type,
        event.department,
        event.data,
        event.national,
        CHANNEL,
        event.authority,
    )
    return event_id


async def emit_many(conn: asyncpg.Connection, batch: Sequence[Event]) -> None:
    """Write many events in one pipelined round trip (the FINESS import's batches)."""
    await conn.executemany(
        _EMIT_SQL,
        [(e.type, e.department, e.data, e.national, CHANNEL, e.authority) for e in batch],
    )


async def audit(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: str,
    department: str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    authority: str | None = None,
) -> None:
    """Who read or changed what, when, under which role (no personal data in it): the actor's
    ``sub``, person, function and the authority they act for (``actor_authority``).
    ``department`` is the geography of the object; ``authority`` the competent authority it
    belongs to (a request's, a carer's, a structure's…), by which ``GET /v1/audit`` filters;
    both None for what belongs to no territory (a national FINESS import)."""
    await conn.execute(
        _AUDIT_SQL,
        principal.sub,
        principal.role,
        action,
        object_type,
        object_id,
        department,
        detail or {},
        authority,
        principal.person_id,
        principal.function,
        principal.authority,
    )


async def claim(
    conn: asyncpg.Connection,
    principal: Principal,
    idempotency: Idempotency | None,
    body: dict[str, Any],
) -> Written | None:
    """Claim the key inside the current transaction; return the stored answer to replay
    when the key was already used for the same request (``None``: go on and write)."""
    if idempotency is None:
        return None
    fingerprint = idempotency.fingerprint(body)
    if await conn.fetchval(_CLAIM_SQL, principal.key, idempotency.key, fingerprint):
        return None
    stored = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE principal = $1 AND key = $2",
        principal.key,
        idempotency.key,
    )
    if stored is None or stored["status_code"] is None:
        raise Conflict("Idempotency-Key: une requête avec cette clé est en cours.")
    if stored["request_hash"] != fingerprint:
        raise Invalid(
            "Idempotency-Key: clé déjà utilisée pour une autre requête.",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different request"}],
        )
    return Written(stored["response"], stored["status_code"], replayed=True)


async def store(
    conn: asyncpg.Connection,
    principal: Principal,
    idempotency: Idempotency | None,
    written: Written,
) -> Written:
    """Keep the answer for replays of the key (nothing without a key); returns it."""
    if idempotency is not None:
        await conn.execute(_STORE_SQL, principal.key, idempotency.key, written.status, written.body)
    return written
