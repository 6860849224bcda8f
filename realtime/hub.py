"""WebSocket fan-out hub: one reader per feed per worker, many clients per reader.

Why this shape: each worker runs ONE reader task per feed that has at least one subscriber
in that worker (``XREAD BLOCK`` on the feed's stream, or the in-process bus) and fans every
entry out to that worker's subscribed clients, instead of one ``XREAD`` per client. 1,000
clients on 100 feeds cost 100 blocking reads per worker, not 1,000, and an entry is decoded
and serialized once per worker, not once per client. Workers share nothing: each one reads
the streams itself, so a client on any worker sees the events committed through any worker
(Redis carries the fan-out between workers; a load balancer may send anyone anywhere).

Guarantees, checked for every event just before it is handed to a client:

- no duplicate: ids only grow per client (the overlap of catch-up and live is dropped);
- no silent gap: every entry carries ``prev``, the id of the entry before it in its feed
  (written by the publisher, see ``realtime.bus``). An entry whose ``prev`` is not the id the
  client saw last means the client missed something (trimmed by retention, or lost by a Redis
  that came back without its data): the client is closed with 4410 and reloads its snapshot.

Resume: a client registers first (live entries start queuing), then reads the history after
its ``last_event_id`` straight from the bus, then drains its queue, dropping what the
catch-up already delivered: there is no window in which an event can fall between the two.
A bounded queue per client; a client whose queue overflows is closed with 1013 and resumes.

A position must be one of the feed's own: an entry it still holds, the predecessor of its
oldest entry, or older than everything it holds (then 4410). An id that lies inside the
feed's history, or after its newest entry, without being one of its entries comes from
another feed (a department's former stream, before the feeds became per authority): the
client is closed with 4410 instead of being served the feed from the middle.
"""

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import orjson

from realtime.bus import Bus, legacy_authority

log = logging.getLogger("places.hub")

EventKey = tuple[int, int]
PING = '{"type":"ping"}'
T = TypeVar("T")


@dataclass(frozen=True)
class FeedSettings:
    """The hub's parameters, built by the service from ``api.settings`` (``PLACES_WS_*``, where
    their defaults and meaning are documented): the hub itself reads no environment."""

    ping_seconds: float
    queue_size: int
    read_block_ms: int
    batch: int
    ready_timeout: float
    max_per_subject: int = 0
    """Feeds one subject may have open at once in this worker (0: no cap)."""


class FeedGap(Exception):
    """The client's position is older than what the feed still holds: reload the snapshot."""


class FeedUnavailable(Exception):
    """The bus does not answer (Redis down): the client should retry later."""


class TooManyFeeds(Exception):
    """The subject already has ``max_per_subject`` feeds open in this worker."""


class Entry(NamedTuple):
    id: str
    key: EventKey
    prev: str | None
    text: str


_EVENT_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
_MAX = 2**64


def parse_event_id(value: str) -> EventKey | None:
    """``<ms>-<seq>`` with both parts unsigned 64-bit integers (Redis stream ids), else None."""
    m = _EVENT_ID.fullmatch(value)
    if m is None:
        return None
    ms, seq = int(m[1]), int(m[2])
    if ms >= _MAX or seq >= _MAX:
        return None
    return ms, seq


def make_entry(entry_id: str, message: dict[str, Any]) -> Entry:
    """The client-facing message of the contract; ``outbox_id`` and ``prev`` stay inside.
    Entries published before the feeds were per authority carry no ``authority``: their
    department's only one stands in (None for 69's)."""
    key = parse_event_id(entry_id)
    if key is None:  # a bus only ever produces well-formed ids
        raise ValueError(f"bad entry id {entry_id!r}")
    department = message["department"]
    body = {
        "id": entry_id,
        "type": message["type"],
        "department": department,
        "authority": message.get("authority") or legacy_authority(department),
        "occurred_at": message["occurred_at"],
        "data": message["data"],
    }
    return Entry(entry_id, key, message.get("prev"), orjson.dumps(body).decode())


@dataclass(eq=False)
class Subscription:
    """One client's view of one feed: its queue, its position and whether it overflowed."""

    feed: str
    queue: asyncio.Queue[Entry]
    last: EventKey | None = None
    last_id: str | None = None
    strict: bool = False
    """Whether the next entry must chain to ``last_id`` (false only before the first entry of
    a client that came without a position)."""
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, entry: Entry) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed.set()

    def admit(self, entry: Entry) -> bool:
        """True to deliver, False for a duplicate; raises FeedGap when something is missing."""
        if self.last is not None and entry.key <= self.last:
            return False
        if self.strict and entry.prev is not None and entry.prev != self.last_id:
            raise FeedGap(f"after {self.last_id} comes {entry.id} (predecessor {entry.prev!r})")
        self.last, self.last_id, self.strict = entry.key, entry.id, True
        return True


class FeedReader:
    """The single reader of one feed in this worker."""

    def __init__(self, hub: "Hub", feed: str) -> None:
        self.hub = hub
        self.feed = feed
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"feed-reader:{feed}")

    async def _run(self) -> None:
        bus, settings = self.hub.bus, self.hub.settings
        backoff = 0.1
        position: str | None = None
        while True:
            try:
                if position is None:
                    # An explicit position, never "$": re-issuing "$" after an empty read would
                    # skip whatever was added between two reads.
                    position = await bus.newest_id(self.feed) or "0-0"
                    self.ready.set()
                batch = await bus.read(self.feed, position, settings.read_block_ms, settings.batch)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: keep the clients, retry
                if backoff == 0.1:
                    log.warning("feed %s: reader waiting for the bus: %r", self.feed, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for entry_id, message in batch:
                position = entry_id
                try:
                    entry = make_entry(entry_id, message)
                except (KeyError, TypeError, ValueError):
                    # Skipped, never fatal to the reader: the next entry's ``prev`` then
                    # tells each client it missed one (4410), which is the truth.
                    log.exception("feed %s: unreadable entry %s skipped", self.feed, entry_id)
                    continue
                for sub in self.subscribers:
                    sub.offer(entry)


class Hub:
    """Per-worker registry of feed readers. The service makes one when it starts and closes
    it when it stops: the hub owns its readers' tasks and the readers' bus, the caller the
    bus it was given."""

    def __init__(self, bus: Bus, settings: FeedSettings) -> None:
        self._source = bus
        self.bus = bus.for_readers()
        self.settings = settings
        self.readers: dict[str, FeedReader] = {}
        self.subjects: dict[str, int] = {}
        """Open subscriptions per subject (one token can otherwise hold thousands)."""

    async def close(self) -> None:
        """Stop every feed reader and release the readers' bus (their Redis pool)."""
        readers = list(self.readers.values())
        self.readers.clear()
        for reader in readers:
            reader.task.cancel()
        await asyncio.gather(*(r.task for r in readers), return_exceptions=True)
        if self.bus is not self._source:
            await self.bus.close()

    def has_room(self, subject: str | None) -> bool:
        """Whether ``subject`` may open one more feed in this worker."""
        cap = self.settings.max_per_subject
        return subject is None or not cap or self.subjects.get(subject, 0) < cap

    @contextlib.asynccontextmanager
    async def subscribe(self, feed: str, subject: str | None = None) -> AsyncIterator[Subscription]:
        """Register a client on ``feed`` (starting its reader if needed) for the block's life;
        ``subject``'s open feeds are counted, TooManyFeeds beyond the cap."""
        if not self.has_room(subject):
            raise TooManyFeeds(subject)
        if subject is not None:
            self.subjects[subject] = self.subjects.get(subject, 0) + 1
        try:
            async with self._subscribe(feed) as sub:
                yield sub
        finally:
            if subject is not None:
                left = self.subjects.get(subject, 0) - 1
                if left > 0:
                    self.subjects[subject] = left
                else:
                    self.subjects.pop(subject, None)

    @contextlib.asynccontextmanager
    async def _subscribe(self, feed: str) -> AsyncIterator[Subscription]:
        reader = self.readers.get(feed)
        if reader is None:
            reader = self.readers[feed] = FeedReader(self, feed)
        sub = Subscription(feed, asyncio.Queue(self.settings.queue_size))
        reader.subscribers.add(sub)
        try:
            try:
                async with asyncio.timeout(self.settings.ready_timeout):
                    await reader.ready.wait()
            except TimeoutError as exc:
                raise FeedUnavailable(feed) from exc
            yield sub
        finally:
            reader.subscribers.discard(sub)
            if not reader.subscribers and self.readers.get(feed) is reader:
                del self.readers[feed]
                reader.task.cancel()

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A bus call retried for a few seconds: after a Redis restart, the first use of each
        pooled connection fails once. FeedUnavailable when Redis stays away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ready_timeout
        delay = 0.05
        while True:
            try:
                return await call()
            except Exception as exc:
                if loop.time() + delay > deadline:
                    raise FeedUnavailable(str(exc)) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _catch_up(
        self, sub: Subscription, after: str, send: Callable[[str], Awaitable[None]]
    ) -> None:
        """Deliver the retained history after ``after``; FeedGap when part of it is gone."""
        key = parse_event_id(after)
        if key is None:
            raise ValueError(f"malformed last_event_id {after!r}")
        sub.last, sub.last_id, sub.strict = key, after, True
        cursor, first = after, True
        while True:
            batch = await self._retrying(
                functools.partial(self.bus.read, sub.feed, cursor, 0, self.settings.batch)
            )
            if first and not batch:
                # Nothing after ``after``: it must then be the newest entry (or the feed holds
                # nothing, and the next entry's ``prev`` decides). Newer than the newest entry
                # is no position of this feed.
                newest = await self._retrying(functools.partial(self.bus.newest_id, sub.feed))
                newest_key = parse_event_id(newest) if newest else None
                if newest_key is not None and newest_key < key:
                    raise FeedGap(f"{after} is after the newest entry of {sub.feed}")
            for entry_id, message in batch:
                entry = make_entry(entry_id, message)
                if first and entry.prev is not None and entry.prev != after:
                    # ``after`` is not the entry's predecessor: a gap if this entry is already
                    # the oldest one kept; else ``after`` lies inside the retained history and
                    # must be one of its entries (nothing before this one is then missing) —
                    # an id of another feed is not a position in this one.
                    oldest = await self._retrying(functools.partial(self.bus.oldest_id, sub.feed))
                    oldest_key = parse_event_id(oldest) if oldest else None
                    if oldest_key is None or oldest_key >= entry.key:
                        raise FeedGap(f"{after} is older than the retained feed")
                    if not await self.holds(sub.feed, after):
                        raise FeedGap(f"{after} is not an entry of {sub.feed}")
                    sub.strict = False
                first = False
                if sub.admit(entry):
                    await send(entry.text)
            if len(batch) < self.settings.batch:
                return
            cursor = batch[-1][0]

    async def holds(self, feed: str, entry_id: str) -> bool:
        """Whether ``feed`` still holds the entry ``entry_id`` (FeedUnavailable when the bus
        stays away)."""
        return await self._retrying(functools.partial(self.bus.contains, feed, entry_id))

    async def pump(
        self,
        sub: Subscription,
        send: Callable[[str], Awaitable[None]],
        last_event_id: str | None = None,
    ) -> None:
        """Catch up after ``last_event_id`` (if any), then live entries and pings, forever.

        Raises FeedGap / FeedUnavailable; returns only by cancellation or a failed ``send``.
        """
        loop = asyncio.get_running_loop()
        ping_every = self.settings.ping_seconds
        if last_event_id is not None:
            await self._catch_up(sub, last_event_id, send)
        next_ping = loop.time() + ping_every
        while True:
            wait = next_ping - loop.time()
            if wait <= 0:
                await send(PING)
                next_ping = loop.time() + ping_every
                continue
            try:
                async with asyncio.timeout(wait):
                    entry = await sub.queue.get()
            except TimeoutError:
                continue
            if sub.admit(entry):
                await send(entry.text)
