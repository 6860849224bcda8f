"""Feeds by authority without a server: where the bus puts an event, which positions the hub
accepts for a resume (its own entries only), the ``places feed`` client's URLs and the CLI's
choice of feed. The in-process bus, so that these run anywhere."""

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from realtime.bus import InProcessBus, OutboxEvent, legacy_authority
from realtime.client import feed_url, format_event
from realtime.hub import FeedGap, FeedSettings, Hub, make_entry

pytestmark = pytest.mark.pure

SETTINGS = FeedSettings(
    ping_seconds=60, queue_size=100, read_block_ms=50, batch=500, ready_timeout=2
)
_serial = iter(range(1, 10**6))


def event(department: str, authority: str | None, n: int) -> OutboxEvent:
    data = {"n": n, "authority": authority}
    return OutboxEvent(
        next(_serial),
        "capacity.updated",
        department,
        "2026-11-28T08:00:00+00:00",
        data,
        data,
        authority,
    )


async def publish(bus: InProcessBus, *events: OutboxEvent) -> None:
    for e in events:
        await bus.publish([e])
        await asyncio.sleep(0.002)  # ids follow the clock in ms: one event per ms


def test_an_event_without_authority_goes_to_its_department_s_only_one() -> None:
    assert legacy_authority("13") == "13"
    assert legacy_authority("2A") == legacy_authority("2B") == "20R"
    assert legacy_authority("68") == "6AE"
    assert legacy_authority("69") is None  # shared: its department's stream
    assert legacy_authority("zz") is None
    assert event("2A", "20R", 0).feed == "20R"
    assert event("69", None, 0).feed == "69"


async def test_the_bus_publishes_to_the_authority_and_the_nation() -> None:
    bus = InProcessBus()
    await publish(bus, event("69", "69M", 1), event("69", "69D", 2), event("2B", "20R", 3))
    assert [m["data"]["n"] for _, m in bus._after("69M", "0-0", 10)] == [1]
    assert [m["data"]["n"] for _, m in bus._after("69D", "0-0", 10)] == [2]
    assert [m["data"]["n"] for _, m in bus._after("20R", "0-0", 10)] == [3]
    assert not bus.feeds.get("69") and not bus.feeds.get("2B")
    national = bus._after("national", "0-0", 10)
    assert [(m["department"], m["authority"]) for _, m in national] == [
        ("69", "69M"),
        ("69", "69D"),
        ("2B", "20R"),
    ]


async def resume(hub: Hub, feed: str, after: str) -> list[dict[str, Any]]:
    """What a client resuming ``feed`` after ``after`` is sent before going live."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async with hub.subscribe(feed) as sub:
        await hub._catch_up(sub, after, send)
    return [json.loads(t) for t in sent]


async def test_a_position_must_be_one_of_the_feed_s_own() -> None:
    """An id of another stream (a department's former feed) is refused wherever it falls in
    the feed — before it, inside it, after it — instead of serving the feed from the middle."""
    bus = InProcessBus()
    hub = Hub(bus, SETTINGS)
    try:
        await publish(bus, event("67", None, 0))  # the former stream of 67 (before 0007)
        before = (await bus.newest_id("67")) or ""
        await publish(bus, event("67", "6AE", 1), event("67", "6AE", 2))
        await publish(bus, event("68", "68", 3))  # as the former relay would have
        inside = (await bus.newest_id("68")) or ""
        await publish(bus, event("68", "6AE", 4))
        await publish(bus, event("68", "68", 5))
        after = (await bus.newest_id("68")) or ""
        own = bus._after("6AE", "0-0", 10)
        assert [m["data"]["n"] for _, m in own] == [1, 2, 4]

        for foreign in (before, inside, after):
            with pytest.raises(FeedGap):
                await resume(hub, "6AE", foreign)
        # Its own entries resume, from the first (the predecessor of the oldest kept) on.
        assert [e["data"]["n"] for e in await resume(hub, "6AE", own[0][0])] == [2, 4]
        assert [e["data"]["n"] for e in await resume(hub, "6AE", own[1][0])] == [4]
        assert await resume(hub, "6AE", own[2][0]) == []
        assert await hub.holds("6AE", own[1][0]) and not await hub.holds("6AE", inside)
    finally:
        await hub.close()


def test_an_entry_published_without_authority_shows_its_department_s() -> None:
    old = {"type": "t", "department": "2A", "occurred_at": "x", "data": {}, "prev": ""}
    assert json.loads(make_entry("1-0", old).text)["authority"] == "20R"
    assert json.loads(make_entry("1-0", {**old, "department": "69"}).text)["authority"] is None
    line = format_event(
        {
            "id": "1-0",
            "occurred_at": "x",
            "department": "69",
            "authority": "69M",
            "type": "t",
            "data": {},
        }
    )
    assert "69M" in line


def test_client_urls() -> None:
    assert feed_url("http://h:1", None, None, "69M") == "ws://h:1/ws/authorities/69M"
    assert feed_url("https://h", "2A", "5-0") == "wss://h/ws/departments/2A?last_event_id=5-0"
    assert feed_url("h:1", None, None) == "ws://h:1/ws/national"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--department", "69"], "department 69 is shared by 69D and 69M: use --authority"),
        (["--authority", "6XX"], "unknown feed 6XX"),
        (["--authority", "69M", "--national"], "choose one feed"),
        ([], "choose one feed"),
    ],
)
def test_cli_feed_refuses_what_no_feed_answers(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["feed", *args])
    assert result.exit_code == 2
    assert message in result.output
