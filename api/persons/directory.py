"""Every request's question "is this person still who the token says, and what may they do",
answered from an in-process cache that PostgreSQL keeps true.

Each worker keeps, per ``(issuer, sub)``, the person's row id, their ``signed_out_at`` and
their live habilitations. A write that changes any of them (grant, revoke, sign out
everywhere) sends ``NOTIFY places_persons`` in its transaction; every worker LISTENs on one
connection of its own and empties its cache when the notification arrives, so a revocation
applies on every worker within the notification's delivery (milliseconds), not at token
expiry. The writing worker also empties its own cache right after the commit.

Fail closed: while the listener is not connected (start-up, database restart), nothing is
cached — each request reads the two indexed rows itself — so a missed notification can never
leave a revoked habilitation usable. A load that started before a notification is not stored
after it (a generation counter), so a read racing a revocation cannot re-cache the old state.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

log = logging.getLogger("places.persons")

CHANNEL = "places_persons"

_LOAD = """
SELECT p.id, extract(epoch FROM p.signed_out_at)::float8 AS signed_out_at,
       p.display_name, p.email, p.siret, p.rpps,
       coalesce(array_agg(h.id ORDER BY h.id) FILTER (WHERE h.id IS NOT NULL), '{}') AS ids,
       coalesce(array_agg(h.function ORDER BY h.id) FILTER (WHERE h.id IS NOT NULL), '{}')
           AS functions,
       coalesce(array_agg(h.authority ORDER BY h.id) FILTER (WHERE h.id IS NOT NULL), '{}')
           AS authorities,
       coalesce(array_agg(h.finess ORDER BY h.id) FILTER (WHERE h.id IS NOT NULL), '{}')
           AS finesses,
       coalesce(array_agg(h.carer_id ORDER BY h.id) FILTER (WHERE h.id IS NOT NULL), '{}')
           AS carer_ids
  FROM persons p
  LEFT JOIN habilitations h ON h.person_id = p.id AND h.revoked_at IS NULL
 WHERE p.issuer = $1 AND p.sub = $2
 GROUP BY p.id
"""
_UPSERT = """
INSERT INTO persons (issuer, sub, display_name, email, siret, rpps)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (issuer, sub) DO UPDATE
   SET display_name = coalesce(EXCLUDED.display_name, persons.display_name),
       email = coalesce(EXCLUDED.email, persons.email),
       siret = coalesce(EXCLUDED.siret, persons.siret),
       rpps = coalesce(EXCLUDED.rpps, persons.rpps)
"""


_SIGNED_OUT_ALL = """
SELECT issuer, sub, extract(epoch FROM signed_out_at)::float8 AS at
  FROM persons WHERE signed_out_at IS NOT NULL
"""
_SIGNED_OUT_ONE = """
SELECT extract(epoch FROM signed_out_at)::float8 FROM persons WHERE issuer = $1 AND sub = $2
"""


@dataclass(frozen=True, slots=True)
class Grant:
    """A live habilitation: a function on a territory."""

    id: int
    function: str
    authority: str | None
    finess: str | None
    carer_id: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """What the database says of one ``(issuer, sub)``; ``person_id`` None: no row."""

    person_id: int | None
    signed_out_at: float | None
    grants: tuple[Grant, ...] = ()
    display_name: str | None = None
    email: str | None = None
    siret: str | None = None
    rpps: str | None = None

    def differs(self, identity: dict[str, str | None]) -> bool:
        """Whether the provider's claims say something new about the person."""
        return any(
            identity.get(name) is not None and identity.get(name) != getattr(self, name)
            for name in ("display_name", "email", "siret", "rpps")
        )


NOBODY = Entry(None, None)


class Directory:
    """The per-worker cache of persons (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._cache: dict[tuple[str, str], Entry] = {}
        self._signed_out: dict[tuple[str, str], float] | None = None
        self._generation = 0
        self.listening = False

    def invalidate(self, *_: object) -> None:
        """Forget everything (a notification arrived, or this worker just wrote)."""
        self._generation += 1
        self._cache.clear()
        self._signed_out = None

    async def signed_out_at(self, issuer: str, sub: str) -> float | None:
        """When ``sub`` signed out everywhere (local role tokens: the declarations' hot path).
        The few who ever did are loaded together, once per invalidation, so a token seen for
        the first time costs a dictionary lookup, not a query; while not listening, one
        indexed row per request."""
        table = self._signed_out
        if table is not None and self.listening:
            return table.get((issuer, sub))
        generation = self._generation
        async with self._pool.acquire() as conn:
            if not self.listening:
                at: float | None = await conn.fetchval(_SIGNED_OUT_ONE, issuer, sub)
                return at
            rows = await conn.fetch(_SIGNED_OUT_ALL)
        table = {(r["issuer"], r["sub"]): r["at"] for r in rows}
        if self.listening and generation == self._generation:
            self._signed_out = table
        return table.get((issuer, sub))

    async def entry(
        self,
        issuer: str,
        sub: str,
        identity: dict[str, str | None] | None = None,
    ) -> Entry:
        """The person's entry; with ``identity`` (the provider's claims, mapped), create the
        row on first sight and keep what the provider says of the person."""
        key = (issuer, sub)
        cached = self._cache.get(key)
        if cached is not None and (
            identity is None or (cached.person_id is not None and not cached.differs(identity))
        ):
            return cached
        generation = self._generation
        async with self._pool.acquire() as conn:
            if identity is not None:
                await conn.execute(
                    _UPSERT,
                    issuer,
                    sub,
                    identity.get("display_name"),
                    identity.get("email"),
                    identity.get("siret"),
                    identity.get("rpps"),
                )
            row = await conn.fetchrow(_LOAD, issuer, sub)
        entry = NOBODY if row is None else _entry(row)
        if self.listening and generation == self._generation:
            self._cache[key] = entry
        return entry

    async def run(self, stop: asyncio.Event) -> None:
        """LISTEN until ``stop``; reconnect after a failure, caching nothing meanwhile."""
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self.invalidate)
                self.invalidate()  # whatever was missed while not listening
                self.listening = True
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                try:
                    while not stop.is_set() and not lost.is_set():
                        # A dead socket is noticed by a query, not by waiting.
                        await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
                        if not stop.is_set() and not lost.is_set():
                            await conn.fetchval("SELECT 1")
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            except (OSError, asyncpg.PostgresError, ConnectionError, TimeoutError) as exc:
                log.warning("persons listener down (%s): every request reads the table", exc)
            finally:
                self.listening = False
                self.invalidate()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)


def _entry(row: asyncpg.Record) -> Entry:
    grants = tuple(
        Grant(i, f, a, fi, str(c) if isinstance(c, UUID) else c)
        for i, f, a, fi, c in zip(
            row["ids"],
            row["functions"],
            row["authorities"],
            row["finesses"],
            row["carer_ids"],
            strict=True,
        )
    )
    return Entry(
        row["id"],
        row["signed_out_at"],
        grants,
        row["display_name"],
        row["email"],
        row["siret"],
        row["rpps"],
    )
