"""Feeds: one per department and one national. Redis Streams when configured, otherwise an
in-process bus with the same semantics for a single worker.

An event's id is its position in its feed (the stream entry id), monotonic per feed, so a
client resumes with ``last_event_id`` and gets every later event once, in order.
"""

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

log = logging.getLogger("places.realtime")

NATIONAL = "national"
RETENTION = 100_000
"""Entries kept per feed (XADD MAXLEN ~): about a day of a busy department's changes."""


def feed_key(feed: str) -> str:
    return f"places:feed:{feed}"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    outbox_id: int
    type: str
    department: str
    occurred_at: str
    data: dict[str, Any]
    national_data: dict[str, Any]

    def message(self, national: bool) -> dict[str, Any]:
        return {
            "type": self.type,
            "department": self.department,
            "occurred_at": self.occurred_at,
            "outbox_id": self.outbox_id,
            "data": self.national_data if national else self.data,
        }


class Bus(Protocol):
    async def publish(self, events: list[OutboxEvent]) -> None: ...

    async def read(
        self, feed: str, after: str | None, block_ms: int, count: int = 500
    ) -> list[tuple[str, dict[str, Any]]]: ...

    async def oldest_id(self, feed: str) -> str | None: ...

    async def close(self) -> None: ...


# Publishing is idempotent: an outbox id already published is skipped, so a relay that
# crashed between XADD and marking the row published never duplicates an event.
_PUBLISH = """
local done = KEYS[1]
local retention = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV, 4 do
  local oid, dept, msg, nmsg = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('ZSCORE', done, oid) == false then
    redis.call('XADD', 'places:feed:' .. dept, 'MAXLEN', '~', retention, '*', 'e', msg)
    redis.call('XADD', 'places:feed:national', 'MAXLEN', '~', retention, '*', 'e', nmsg)
    redis.call('ZADD', done, tonumber(oid), oid)
    n = n + 1
  end
end
local size = redis.call('ZCARD', done)
if size > retention * 2 then
  redis.call('ZREMRANGEBYRANK', done, 0, size - retention * 2 - 1)
end
return n
"""


class RedisBus:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._publish = client.register_script(_PUBLISH)

    async def publish(self, events: list[OutboxEvent]) -> None:
        args: list[Any] = [RETENTION]
        for ev in events:
            args += [
                ev.outbox_id,
                ev.department,
                json.dumps(ev.message(national=False), separators=(",", ":")),
                json.dumps(ev.message(national=True), separators=(",", ":")),
            ]
        await self._publish(keys=["places:relay:done"], args=args)

    async def read(
        self, feed: str, after: str | None, block_ms: int, count: int = 500
    ) -> list[tuple[str, dict[str, Any]]]:
        reply = await self.client.xread(
            {feed_key(feed): after or "$"}, count=count, block=block_ms or None
        )
        out: list[tuple[str, dict[str, Any]]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                raw = fields.get(b"e") or fields.get("e")
                out.append((eid, json.loads(raw)))
        return out

    async def oldest_id(self, feed: str) -> str | None:
        entries = await self.client.xrange(feed_key(feed), count=1)
        if not entries:
            return None
        eid = entries[0][0]
        return eid.decode() if isinstance(eid, bytes) else eid

    async def close(self) -> None:
        await self.client.aclose()


class InProcessBus:
    """Single-worker fallback: bounded deques per feed, ids ``<n>-0`` like Redis's."""

    def __init__(self, retention: int = RETENTION) -> None:
        self.retention = retention
        self.feeds: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self.counters: dict[str, int] = {}
        self.published: set[int] = set()
        self.changed = asyncio.Condition()

    def _append(self, feed: str, message: dict[str, Any]) -> None:
        n = self.counters.get(feed, 0) + 1
        self.counters[feed] = n
        self.feeds.setdefault(feed, deque(maxlen=self.retention)).append((n, message))

    async def publish(self, events: list[OutboxEvent]) -> None:
        for ev in events:
            if ev.outbox_id in self.published:
                continue
            self.published.add(ev.outbox_id)
            self._append(ev.department, ev.message(national=False))
            self._append(NATIONAL, ev.message(national=True))
        async with self.changed:
            self.changed.notify_all()

    def _after(self, feed: str, after: str | None, count: int) -> list[tuple[str, dict[str, Any]]]:
        entries = self.feeds.get(feed, ())
        start = self.counters.get(feed, 0) if after is None else int(after.split("-")[0])
        return [(f"{n}-0", m) for n, m in entries if n > start][:count]

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
