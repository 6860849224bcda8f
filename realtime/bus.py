"""Feeds: one per competent authority (``69M``, ``20R``, ``13``…) and one national. Redis
Streams when configured, otherwise an in-process bus with the same semantics for a single
worker.

An event's id is its position in its feed (the stream entry id), monotonic per feed, so a
client resumes with ``last_event_id`` and gets every later event once, in order.

The feed of an event is its authority's. An outbox row without one (written before the
authorities, migration 0007, or by a worker of the previous version during an upgrade) goes
to its department's only authority (``2A`` → ``20R``, ``13`` → ``13``), and to the stream
of its department when the department has two (``69``: no client reads it; the national
feed has the event). An event with an empty national payload goes to its feed only, not to
the national one (the service's rule: nothing of children nationally, ``api.events``).
"""

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from geo.referential import authorities_of_department

log = logging.getLogger("places.realtime")

NATIONAL = "national"
RETENTION = 100_000
"""Entries kept per feed (XADD MAXLEN ~): about a day of a busy department's changes."""


def feed_key(feed: str) -> str:
    return f"places:feed:{feed}"


def legacy_authority(department: str) -> str | None:
    """The authority of an event that was written without one: its department's, when the
    department has exactly one (``67`` → ``6AE``), else None (``69``, an unknown code)."""
    codes = authorities_of_department(department)
    return codes[0] if len(codes) == 1 else None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    outbox_id: int
    type: str
    department: str
    occurred_at: str
    data: dict[str, Any]
    national_data: dict[str, Any]
    authority: str | None = None
    """The competent authority whose feed the event goes to (``None``: its department's
    stream, see the module's docstring)."""

    @property
    def feed(self) -> str:
        return self.authority or self.department

    def message(self, national: bool) -> dict[str, Any]:
        return {
            "type": self.type,
            "department": self.department,
            "authority": self.authority,
            "occurred_at": self.occurred_at,
            "outbox_id": self.outbox_id,
            "data": self.national_data if national else self.data,
        }


class Bus(Protocol):
    async def publish(self, events: list[OutboxEvent]) -> dict[str, str]:
        """Publish (skipping ids already published); each feed appended to → its new head."""
        ...

    async def read(
        self, feed: str, after: str | None, block_ms: int, count: int = 500
    ) -> list[tuple[str, dict[str, Any]]]: ...

    async def oldest_id(self, feed: str) -> str | None: ...

    async def newest_id(self, feed: str) -> str | None: ...

    async def contains(self, feed: str, entry_id: str) -> bool: ...

    async def missing(self, outbox_ids: list[int]) -> list[int]: ...

    def bind_source(self, identity: str) -> None: ...

    def forget_heads(self) -> None: ...

    def for_readers(self) -> "Bus": ...

    async def close(self) -> None: ...


# Publishing is idempotent: an outbox id already published is skipped, so a relay that
# crashed between XADD and marking the row published never duplicates an event.
#
# Every entry also carries ``p``, the id of the entry before it in its feed ('' when unknown),
# so a reader can prove it missed nothing: an entry whose ``p`` is not the last id it saw
# means a gap (trimmed by retention, or lost by a Redis that restarted without its data).
# When a feed's stream is missing, the relay passes the last id it published there itself
# (ARGV hints): the stream restarts after that id, so ids stay monotonic and the chain goes
# on across a Redis restart without persistence. The script returns each feed's new head.
# KEYS[2] (``<done>:since``) records the first outbox id published into a fresh "done" set:
# ``RedisBus.missing`` compares only from there (a failover's lost tail, not a lost Redis).
_PUBLISH = """
local done = KEYS[1]
local retention = tonumber(ARGV[1])
local nhints = tonumber(ARGV[2])
local hints = {}
for i = 3, 2 + 2 * nhints, 2 do
  hints[ARGV[i]] = ARGV[i + 1]
end
local heads = {}
local function append(feed, msg)
  local key = 'places:feed:' .. feed
  local prev = heads[feed]
  if prev == nil then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    if last[1] then
      prev = last[1][1]
    elseif hints[feed] and redis.call('EXISTS', key) == 0 then
      prev = hints[feed]
      redis.call('XADD', key, 'MAXLEN', '0', prev, 'p', '', 'e', '')
    else
      prev = ''
    end
  end
  heads[feed] = redis.call('XADD', key, 'MAXLEN', '~', retention, '*', 'p', prev, 'e', msg)
end
local n = 0
if redis.call('EXISTS', done) == 0 and #ARGV >= 3 + 2 * nhints then
  redis.call('SET', KEYS[2], ARGV[3 + 2 * nhints])
end
for i = 3 + 2 * nhints, #ARGV, 4 do
  local oid, feed, msg, nmsg = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('ZSCORE', done, oid) == false then
    append(feed, msg)
    if nmsg ~= '' then
      append('national', nmsg)
    end
    redis.call('ZADD', done, tonumber(oid), oid)
    n = n + 1
  end
end
local size = redis.call('ZCARD', done)
if size > retention * 2 then
  redis.call('ZREMRANGEBYRANK', done, 0, size - retention * 2 - 1)
end
local out = {}
for feed, id in pairs(heads) do
  out[#out + 1] = feed
  out[#out + 1] = id
end
return out
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    def __init__(
        self, client: aioredis.Redis, *, sentinel: tuple[Sentinel, str] | None = None
    ) -> None:
        self.client = client
        self.sentinel = sentinel
        """The Sentinels and the master's name, when the master is found through them."""
        self.owns_sentinel = sentinel is not None
        self._publish = client.register_script(_PUBLISH)
        self.heads: dict[str, str] = {}
        """Last id this process's relay published per feed; only trusted while it holds the
        relay lock without interruption (``forget_heads`` on every acquisition)."""
        self.done_key = "places:relay:done"

    def bind_source(self, identity: str) -> None:
        """Scope the "already published" set to one database (cluster id + database oid):
        outbox ids restart at 1 in a recreated or restored database, and must not be taken
        for the events of another one that shared this Redis."""
        self.done_key = f"places:relay:done:{identity}"

    def forget_heads(self) -> None:
        self.heads.clear()

    def for_readers(self, max_connections: int = 512) -> "RedisBus":
        """The same Redis through a pool of its own for the WebSocket hub: each feed reader
        holds a connection in ``XREAD BLOCK``, and ~100 of them must neither exhaust the
        shared pool (redis-py's default cap is 100) nor keep the relay from publishing.
        A blocking pool: a burst of catch-up reads waits for a connection, never fails."""
        if self.sentinel is not None:
            # A pool that finds the master through the Sentinels, again after a failover
            # (not a blocking one: redis-py has none for Sentinel; a reader beyond the cap
            # fails and retries, like a reader during an outage).
            sentinel, name = self.sentinel
            readers_client = sentinel.master_for(
                name, max_connections=max_connections, **_CLIENT_TIMEOUTS
            )
            bus = RedisBus(readers_client, sentinel=self.sentinel)
            bus.owns_sentinel = False
            return bus
        pool = self.client.connection_pool
        kwargs = {  # the connection's own parameters, not the pool's helpers bound to it
            k: v
            for k, v in pool.connection_kwargs.items()
            if not k.startswith(("maint_notifications", "orig_")) and k != "himport_registry"
        }
        readers = aioredis.BlockingConnectionPool(
            connection_class=pool.connection_class,
            max_connections=max_connections,
            timeout=5,
            **kwargs,
        )
        # ``from_pool``: the client owns the pool, so ``close`` disconnects it too (a client
        # given ``connection_pool=`` leaves its pool open on ``aclose``).
        return RedisBus(aioredis.Redis.from_pool(readers))

    async def publish(self, events: list[OutboxEvent]) -> dict[str, str]:
        feeds = {ev.feed for ev in events} | {NATIONAL}
        hints = [(f, self.heads[f]) for f in sorted(feeds) if f in self.heads]
        args: list[Any] = [RETENTION, len(hints)]
        for feed, head in hints:
            args += [feed, head]
        for ev in events:
            args += [
                ev.outbox_id,
                ev.feed,
                json.dumps(ev.message(national=False), separators=(",", ":")),
                # An empty national payload: not on the national feed (api.events).
                json.dumps(ev.message(national=True), separators=(",", ":"))
                if ev.national_data
                else "",
            ]
        reply = await self._publish(keys=[self.done_key, self.done_key + ":since"], args=args)
        heads = {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply or ()) - 1, 2)}
        self.heads.update(heads)
        return heads

    async def missing(self, outbox_ids: list[int]) -> list[int]:
        """Those of ``outbox_ids`` this Redis does not hold as published: after a failover,
        the new master lacks what the former one acknowledged but had not replicated (the
        publishing script's effects replicate as one transaction: an event is in its feeds
        exactly when its id is in the "done" set).

        Only ids from the first one this Redis's "done" set was started with (``:since``,
        set by the publishing script when the set is missing): a Redis that lost everything
        (restarted without persistence, flushed) is not told what it lost — the relay's heads
        carry each feed's chain over it, so the clients that saw those events go on and those
        that had not are told to reload. A failover keeps ``:since`` (it is replicated), so
        the tail a replica lacks is found here."""
        since: Any = await self.client.get(self.done_key + ":since")
        if since is None:
            return []
        outbox_ids = [o for o in outbox_ids if o >= int(since)]
        found: list[int] = []
        for i in range(0, len(outbox_ids), 1000):
            chunk = outbox_ids[i : i + 1000]
            scores: Any = await self.client.zmscore(self.done_key, [str(o) for o in chunk])
            found += [o for o, score in zip(chunk, scores, strict=True) if score is None]
        return found

    async def read(
        self, feed: str, after: str | None, block_ms: int, count: int = 500
    ) -> list[tuple[str, dict[str, Any]]]:
        # Raw RESP2 replies (redis-py types them as a union of both protocols' shapes).
        reply: Any = await self.client.xread(
            {feed_key(feed): after or "$"}, count=count, block=block_ms or None
        )
        out: list[tuple[str, dict[str, Any]]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                raw = fields.get(b"e") or fields.get("e")
                assert raw is not None, "every entry carries its event"
                message = json.loads(raw)
                prev = fields.get(b"p", fields.get("p"))
                message["prev"] = None if prev is None else _text(prev)
                out.append((eid, message))
        return out

    async def oldest_id(self, feed: str) -> str | None:
        entries = await self.client.xrange(feed_key(feed), count=1)
        if not entries:
            return None
        eid = entries[0][0]
        return eid.decode() if isinstance(eid, bytes) else eid

    async def newest_id(self, feed: str) -> str | None:
        entries: Any = await self.client.xrevrange(feed_key(feed), count=1)
        return _text(entries[0][0]) if entries else None

    async def contains(self, feed: str, entry_id: str) -> bool:
        entries: Any = await self.client.xrange(feed_key(feed), entry_id, entry_id, count=1)
        return bool(entries)

    async def close(self) -> None:
        """Close the client and its connection pool (clients made by ``connect_redis`` and
        ``for_readers`` own their pool), and the Sentinels' connections of the bus that made
        them."""
        await self.client.aclose()
        if self.sentinel is not None and self.owns_sentinel:
            for client in self.sentinel[0].sentinels:
                await client.aclose()


class InProcessBus:
    """Single-worker fallback: bounded deques per feed, ids ``<n>-0`` like Redis's.

    ``n`` follows the wall clock in milliseconds (like Redis's ``*`` ids), so ids keep growing
    across a restart of the process: a client resuming with an id of the previous run is then
    told to reload (its ``prev`` chain breaks) instead of silently skipping the new events.
    """

    def __init__(self, retention: int = RETENTION) -> None:
        self.retention = retention
        self.feeds: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self.counters: dict[str, int] = {}
        self.published: set[int] = set()
        self.changed = asyncio.Condition()

    def _append(self, feed: str, message: dict[str, Any]) -> None:
        last = self.counters.get(feed, 0)
        n = max(last + 1, time.time_ns() // 1_000_000)
        message["prev"] = f"{last}-0" if last else ""
        self.counters[feed] = n
        self.feeds.setdefault(feed, deque(maxlen=self.retention)).append((n, message))

    async def missing(self, outbox_ids: list[int]) -> list[int]:
        """Nothing is lost while this process lives."""
        return []

    async def publish(self, events: list[OutboxEvent]) -> dict[str, str]:
        heads: dict[str, str] = {}
        for ev in events:
            if ev.outbox_id in self.published:
                continue
            self.published.add(ev.outbox_id)
            for feed, national in ((ev.feed, False), (NATIONAL, True)):
                if national and not ev.national_data:
                    continue  # not on the national feed (api.events.NOT_NATIONAL)
                self._append(feed, ev.message(national=national))
                heads[feed] = f"{self.counters[feed]}-0"
        async with self.changed:
            self.changed.notify_all()
        return heads

    def _after(self, feed: str, after: str | None, count: int) -> list[tuple[str, dict[str, Any]]]:
        entries = self.feeds.get(feed, ())
        start = self.counters.get(feed, 0) if after is None else int(after.split("-")[0])
        found: list[tuple[str, dict[str, Any]]] = []
        for n, m in reversed(entries):  # newest first: a live reader stops after a few
            if n <= start:
                break
            found.append((f"{n}-0", m))
        found.reverse()
        return found[:count]

    async def read(
        self, feed: str, after: str | None, block_ms: int, count: int = 500
    ) -> list[tuple[str, dict[str, Any]]]:
        if after is None:
            after = f"{self.counters.get(feed, 0)}-0"
        found = self._after(feed, after, count)
        if found or not block_ms:
            return found
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: bool(self._after(feed, after, 1))),
                    block_ms / 1000,
                )
            except TimeoutError:
                return []
        return self._after(feed, after, count)

    async def oldest_id(self, feed: str) -> str | None:
        entries = self.feeds.get(feed)
        return f"{entries[0][0]}-0" if entries else None

    async def newest_id(self, feed: str) -> str | None:
        entries = self.feeds.get(feed)
        return f"{entries[-1][0]}-0" if entries else None

    async def contains(self, feed: str, entry_id: str) -> bool:
        ms, _, seq = entry_id.partition("-")
        if seq != "0" or not ms.isdigit():
            return False
        n = int(ms)
        return any(m == n for m, _ in reversed(self.feeds.get(feed, ())))

    def bind_source(self, identity: str) -> None:
        """One process, one database: nothing to scope."""

    def forget_heads(self) -> None:
        """Nothing to forget: this bus lives and dies with its only publisher."""

    def for_readers(self) -> "InProcessBus":
        return self

    async def close(self) -> None:
        return None


async def connect_redis(url: str | None) -> aioredis.Redis | None:
    """A client when Redis answers, else None (the caller falls back and says so)."""
    if not url:
        return None
    client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        return None
    return client


_CLIENT_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 5}


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` → ``[(host, port), …]`` (ValueError naming a bad entry)."""
    out = []
    for item in value.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"PLACES_REDIS_SENTINELS: {item.strip()!r} is not host:port")
        out.append((host, int(port)))
    return out


async def connect_sentinel(
    sentinels: str, master_name: str
) -> tuple[Sentinel, aioredis.Redis] | None:
    """The master named ``master_name`` through the Sentinels, when one answers; else None.
    The client asks the Sentinels again whenever its connection to the master fails, so it
    follows a failover by itself (a demoted master's READONLY also sends it back to them)."""
    sentinel = Sentinel(
        parse_sentinels(sentinels),
        sentinel_kwargs={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        **_CLIENT_TIMEOUTS,
    )
    client = sentinel.master_for(master_name, **_CLIENT_TIMEOUTS)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        return None
    return sentinel, client
