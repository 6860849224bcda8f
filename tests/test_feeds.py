"""Live feeds over real sockets: real server processes (``places run``), Redis servers of the
tests' own, the ``websockets`` client library.

The servers use databases copied from a migrated template and a ``redis-server`` started
here, not the conftest's: the in-process app of the other tests runs an outbox relay on the
shared test database (it would publish these events to its own Redis), and the shared Redis
database holds other runs' streams and their relay's published-ids set. The Redis outage
test stops and restarts this module's Redis, so it runs after the other cluster tests.
"""

import asyncio
import contextlib
import dataclasses
import inspect
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from api.auth import issue_token
from api.db import create_pool, drop_database
from api.requests.service import local_today
from loadtests.harness import ROOT, RedisServer, ServiceProcess
from tests.support.database import COMMUNES, create_fixture_database
from tests.support.env import ADMIN_DSN
from tests.support.factories import make_structure

# The first test also starts the module's servers (up to 90 s each on a busy machine).
pytestmark = [pytest.mark.database, pytest.mark.server, pytest.mark.timeout(180)]

BASE = ADMIN_DSN.rsplit("/", 1)[0]
TEMPLATE = f"places_test_{os.getpid()}_feeds"
PING_SECONDS = 0.3
AUTH_SECONDS = 1.0
"""PLACES_WS_AUTH_SECONDS of the test servers: a silent client is closed after it."""
ALLOWED_ORIGIN = "https://places.example.fr"
LYON = "/ws/authorities/69M"
"""The feed of the units ``new_unit`` makes by default (in Lyon: Métropole de Lyon)."""


def feed_server(dsn: str, redis_url: str, **env: str) -> ServiceProcess:
    """A worker that pings every PING_SECONDS (tests wait for the first ping); ``redis_url``
    empty: no Redis, the in-process bus."""
    return ServiceProcess(
        dsn,
        redis_url,
        PLACES_WS_PING_SECONDS=str(PING_SECONDS),
        PLACES_WS_AUTH_SECONDS=str(AUTH_SECONDS),
        **env,
    )


@pytest.fixture(scope="module")
async def template() -> AsyncIterator[str]:
    """A migrated database with the conftest's departments and communes, to copy from."""
    dsn = f"{BASE}/{TEMPLATE}"
    await create_fixture_database(dsn)
    yield TEMPLATE
    await drop_database(dsn)


@contextlib.asynccontextmanager
async def scenario_database(template: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    dsn = f"{BASE}/{name}"
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield dsn, pool
    finally:
        await pool.close()
        await drop_database(dsn)


class Cluster:
    """Two workers on one database and one Redis. The second one keeps at most 16 events per
    client (the default is 1,000) so that a client that stops reading overflows quickly; the
    tests that watch it never let more than a handful of events pile up otherwise. It also
    accepts the legacy ``?access_token=`` and pages of ALLOWED_ORIGIN only."""

    def __init__(self, dsn: str, pool: asyncpg.Pool, redis: RedisServer) -> None:
        self.dsn, self.pool, self.redis = dsn, pool, redis
        self.servers = [
            feed_server(dsn, redis.url),
            feed_server(
                dsn,
                redis.url,
                PLACES_WS_QUEUE_SIZE="16",
                PLACES_WS_QUERY_TOKEN="true",  # an old client's URL token, by choice
                PLACES_WS_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
            ),
        ]
        self.slow = self.servers[1]


class Embedded:
    """One worker with no Redis configured (in-process bus) and a database of its own: the
    cluster's relays would otherwise publish its events to their Redis."""

    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        self.dsn, self.pool = dsn, pool
        self.server = feed_server(dsn, "")


@pytest.fixture(scope="module")
async def world(template: str) -> AsyncIterator[tuple[Cluster, Embedded]]:
    """Every server of the module, started together: startup is mostly imports."""
    redis = RedisServer()
    await redis.astart()
    async with (
        scenario_database(template) as (dsn, pool),
        scenario_database(template) as (embedded_dsn, embedded_pool),
    ):
        cluster, embedded = Cluster(dsn, pool, redis), Embedded(embedded_dsn, embedded_pool)
        servers = [*cluster.servers, embedded.server]
        try:
            await asyncio.gather(*(s.astart(ready="/healthz") for s in servers))
            yield cluster, embedded
        finally:
            await asyncio.gather(*(s.astop() for s in servers))
            await redis.astop()


@pytest.fixture
def cluster(world: tuple[Cluster, Embedded]) -> Cluster:
    return world[0]


# --- clients ---------------------------------------------------------------------------------


def token(role: str, **scope: str) -> str:
    return issue_token(role, **scope)


@contextlib.asynccontextmanager
async def ws_open(
    server: ServiceProcess,
    path: str,
    bearer: str | None = None,
    last_event_id: str | None = None,
    via: str = "header",
    origin: str | None = None,
    **kwargs: Any,
) -> AsyncIterator[ClientConnection]:
    """A feed connection whose token travels ``via`` the ``Authorization`` header, the
    ``places.bearer.<token>`` subprotocol, the first message, or the URL (``query``, legacy);
    ``origin``: the ``Origin`` a browser would send (none by default, as a non-browser)."""
    params = []
    if last_event_id is not None:
        params.append(f"last_event_id={last_event_id}")
    headers = {}
    protocols = None
    if bearer is not None and via == "query":
        params.append(f"access_token={bearer}")
    elif bearer is not None and via == "subprotocol":
        protocols = [Subprotocol("places.v1"), Subprotocol(f"places.bearer.{bearer}")]
    elif bearer is not None and via == "header":
        headers["Authorization"] = f"Bearer {bearer}"
    url = server.ws + path + ("?" + "&".join(params) if params else "")
    async with connect(
        url,
        additional_headers=headers,
        subprotocols=protocols,
        origin=Origin(origin) if origin else None,
        proxy=None,
        open_timeout=5,
        **kwargs,
    ) as ws:
        if bearer is not None and via == "message":
            await ws.send(json.dumps({"type": "auth", "token": bearer}))
        yield ws


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message that is not a ping."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") != "ping":
                return message


async def subscribed(ws: ClientConnection, timeout: float = 5.0) -> None:
    """Wait for the first ping: the server sends it only once the subscription is live."""
    async with asyncio.timeout(timeout):
        while json.loads(await ws.recv()).get("type") != "ping":
            pass


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str, int]:
    """Read until the server closes; (code, reason, events read before)."""
    events = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                if json.loads(await ws.recv()).get("type") != "ping":
                    events += 1
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code, exc.rcvd.reason, events


async def expect_refusal(server: ServiceProcess, path: str, code: int, **kwargs: Any) -> str:
    async with ws_open(server, path, **kwargs) as ws:
        got, reason, events = await closed_with(ws)
    assert (got, events) == (code, 0), (got, reason)
    assert reason
    return reason


class Unit:
    """A unit to declare capacity on, with its establishment's token."""

    def __init__(self, unit_id: str, finess: str) -> None:
        self.id, self.finess = unit_id, finess
        self.headers = {"Authorization": f"Bearer {token('structure', finess=finess)}"}
        self.version = 0

    async def declare(self, server: ServiceProcess, client: httpx.AsyncClient) -> int:
        """One declaration through ``server``; returns its version (checked in the event)."""
        r = await client.put(
            f"{server.http}/v1/units/{self.id}/capacity",
            json={"temporality": "current", "available": (self.version + 1) % 5},
            headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 200, r.text
        self.version = r.json()["version"]
        return self.version


async def new_unit(pool: asyncpg.Pool, department: str = "69", commune: str | None = None) -> Unit:
    """A unit in ``commune`` (default: the department's first in the fixtures; Lyon for 69)."""
    commune = commune or next(c[0] for c in COMMUNES if c[2] == department)
    s = await make_structure(pool, department=department, commune=commune)
    return Unit(str(s["unit_ids"][0]), s["finess"])


def versions(events: list[dict[str, Any]], unit: Unit) -> list[int]:
    return [e["data"]["version"] for e in events if e["data"].get("unit_id") == unit.id]


def assert_increasing(events: list[dict[str, Any]]) -> None:
    keys = [tuple(int(p) for p in e["id"].split("-")) for e in events]
    assert keys == sorted(set(keys)), "ids must strictly increase"


# --- tests -----------------------------------------------------------------------------------


async def test_event_crosses_workers_within_a_second(cluster: Cluster) -> None:
    a, b = cluster.servers
    unit = await new_unit(cluster.pool, "38")
    async with (
        ws_open(a, "/ws/departments/38", token("department", department="38")) as dept,
        ws_open(a, "/ws/national", token("national")) as national,
        httpx.AsyncClient() as http,
    ):
        await subscribed(dept)
        await subscribed(national)
        version = await unit.declare(b, http)
        committed = time.monotonic()
        event = await next_event(dept)
        latency = time.monotonic() - committed
        assert latency < 1.0, latency
        assert set(event) == {"id", "type", "department", "authority", "occurred_at", "data"}
        assert event["type"] == "capacity.updated" and event["department"] == "38"
        assert event["authority"] == event["data"]["authority"] == "38"
        assert event["data"]["unit_id"] == unit.id and event["data"]["version"] == version
        seen_nationally = await next_event(national)
        assert seen_nationally["data"]["unit_id"] == unit.id
        assert seen_nationally["type"] == "capacity.updated"
        assert seen_nationally["authority"] == seen_nationally["data"]["authority"] == "38"


async def test_refusals_close_before_any_event(cluster: Cluster) -> None:
    a = cluster.servers[0]
    dept38 = token("department", department="38")
    path = "/ws/departments/38"
    await expect_refusal(a, path, 4401)
    await expect_refusal(a, path, 4401, bearer="not-a-jwt")
    await expect_refusal(a, path, 4401, bearer="not-a-jwt", via="subprotocol")
    await expect_refusal(a, path, 4401, bearer="not-a-jwt", via="message")
    await expect_refusal(a, path, 4401, bearer=issue_token("operator", ttl_minutes=-1))
    await expect_refusal(a, path, 4403, bearer=token("department", department="01"))
    await expect_refusal(a, path, 4403, bearer=token("structure", finess="380000000"))
    await expect_refusal(a, path, 4403, bearer=token("national"))
    await expect_refusal(a, "/ws/national", 4403, bearer=dept38)
    await expect_refusal(a, "/ws/departments/zz", 4404, bearer=token("operator"))
    # The platform operator follows no authority's feed (children's data).
    await expect_refusal(a, path, 4403, bearer=token("operator"))
    for bad in ("abc", "12", "1-2-3", "-1-0", "99999999999999999999999-0", "1-%20"):
        reason = await expect_refusal(a, path, 4400, bearer=dept38, last_event_id=bad)
        assert "last_event_id" in reason
    # Every transport of a valid token is accepted; none is written to the logs.
    for via in ("header", "subprotocol", "message"):
        async with ws_open(a, path, dept38, via=via) as ws:
            await subscribed(ws)
            assert ws.subprotocol == ("places.v1" if via == "subprotocol" else None)
    assert dept38 not in a.output()


async def test_the_token_stays_out_of_the_url_unless_configured(cluster: Cluster) -> None:
    """``?access_token=`` is refused by default (4401 saying what to do instead); a server
    with PLACES_WS_QUERY_TOKEN accepts it for old clients and never logs it."""
    a, b = cluster.servers
    dept38 = token("department", department="38")
    path = "/ws/departments/38"
    reason = await expect_refusal(a, path, 4401, bearer=dept38, via="query")
    assert "places.bearer." in reason and "URL" in reason
    async with ws_open(b, path, dept38, via="query") as ws:
        await subscribed(ws)
    assert "access_token=***" in b.output()
    for server in (a, b):
        assert dept38 not in server.output()


async def test_a_client_that_never_sends_its_token_is_closed(cluster: Cluster) -> None:
    """No token in the handshake: the first message must carry it, within
    PLACES_WS_AUTH_SECONDS; anything else is 4401 at once."""
    a = cluster.servers[0]
    path = "/ws/departments/38"
    started = time.monotonic()
    await expect_refusal(a, path, 4401)  # silent
    assert AUTH_SECONDS <= time.monotonic() - started < AUTH_SECONDS + 4
    async with ws_open(a, path) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        started = time.monotonic()
        code, reason, _ = await closed_with(ws)
    assert code == 4401 and "places.bearer." in reason
    assert time.monotonic() - started < AUTH_SECONDS


async def test_origin_is_checked_for_browsers(cluster: Cluster) -> None:
    """A page of another site cannot open a feed with its user's token (cross-site WebSocket
    hijacking): its Origin is refused at the handshake (403). The service's own pages (same
    host) may; so may clients that send no Origin. With PLACES_WS_ALLOWED_ORIGINS, those
    origins and no other."""
    a, b = cluster.servers
    dept38 = token("department", department="38")
    path = "/ws/departments/38"
    own = a.http  # http://127.0.0.1:<port>: the same host as the handshake's Host
    async with ws_open(a, path, dept38, via="subprotocol", origin=own) as ws:
        await subscribed(ws)
    for foreign in (
        "https://evil.example",
        "http://127.0.0.1:1",
        "null",
        own.replace("http", "ftp"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with ws_open(a, path, dept38, via="subprotocol", origin=foreign):
                pass
        assert refused.value.response.status_code == 403, foreign
    async with ws_open(b, path, dept38, origin=ALLOWED_ORIGIN) as ws:
        await subscribed(ws)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_open(b, path, dept38, origin=b.http):
            pass
    assert refused.value.response.status_code == 403
    async with ws_open(b, path, dept38) as ws:  # no Origin: not a browser
        await subscribed(ws)


async def test_no_other_department_leaks(cluster: Cluster) -> None:
    a, b = cluster.servers
    u69, u01 = await new_unit(cluster.pool, "69"), await new_unit(cluster.pool, "01")
    async with (
        ws_open(a, "/ws/departments/01", token("department", department="01")) as ws01,
        ws_open(b, LYON, token("authority_admin", authority="69M")) as ws69,
        httpx.AsyncClient() as http,
    ):
        await subscribed(ws01)
        await subscribed(ws69)
        await u69.declare(a, http)
        await u69.declare(b, http)
        await u01.declare(a, http)
        first01 = await next_event(ws01)
        assert first01["department"] == "01" and first01["data"]["unit_id"] == u01.id
        got69 = [await next_event(ws69), await next_event(ws69)]
        assert versions(got69, u69) == [1, 2]


async def test_resume_delivers_exactly_the_missed_events_in_order(cluster: Cluster) -> None:
    a, b = cluster.servers
    unit = await new_unit(cluster.pool)
    bearer = token("department", authority="69M")
    async with httpx.AsyncClient() as http:
        async with ws_open(a, LYON, bearer) as ws:
            await subscribed(ws)
            await unit.declare(b, http)
            last = (await next_event(ws))["id"]
        missed = [await unit.declare(b if i % 2 else a, http) for i in range(7)]
        async with ws_open(b, LYON, bearer, last_event_id=last) as ws:
            got = [await next_event(ws) for _ in range(7)]
            assert versions(got, unit) == missed
            live = await unit.declare(a, http)
            after = await next_event(ws)
            assert after["data"]["version"] == live
            assert_increasing([*got, after])
            assert got[0]["id"] > last


async def test_resume_older_than_the_retained_feed_is_4410(cluster: Cluster) -> None:
    a = cluster.servers[0]
    unit = await new_unit(cluster.pool, "75")
    bearer = token("department", department="75")
    async with httpx.AsyncClient() as http, ws_open(a, "/ws/departments/75", bearer) as ws:
        await subscribed(ws)
        for _ in range(3):
            await unit.declare(a, http)
        ids = [(await next_event(ws))["id"] for _ in range(3)]
    client = aioredis.from_url(cluster.redis.url)
    try:
        await client.xtrim("places:feed:75", maxlen=1, approximate=False)  # retention passed
    finally:
        await client.aclose()
    reason = await expect_refusal(
        a, "/ws/departments/75", 4410, bearer=bearer, last_event_id=ids[0]
    )
    assert "instantané" in reason
    # the predecessor of what is kept is still a valid position: nothing is missing after it
    async with ws_open(a, "/ws/departments/75", bearer, last_event_id=ids[1]) as ws:
        assert (await next_event(ws))["id"] == ids[2]
    async with ws_open(a, "/ws/departments/75", bearer, last_event_id=ids[2]) as ws:
        await subscribed(ws)


async def test_feed_closes_with_4401_when_its_token_expires(cluster: Cluster) -> None:
    unit = await new_unit(cluster.pool, "38")
    short = issue_token("department", department="38", ttl_seconds=3)
    async with ws_open(cluster.servers[0], "/ws/departments/38", short) as ws:
        await subscribed(ws)
        async with httpx.AsyncClient() as client:
            version = await unit.declare(cluster.servers[1], client)
        event = await next_event(ws)  # live while the token is valid
        assert event["data"]["unit_id"] == unit.id and event["data"]["version"] == version
        code, reason, _ = await closed_with(ws, timeout=10)
    assert code == 4401 and "expiré" in reason


async def test_pings_are_sent(cluster: Cluster) -> None:
    async with ws_open(cluster.servers[1], "/ws/national", token("operator")) as ws:
        async with asyncio.timeout(PING_SECONDS * 10):
            pings = 0
            while pings < 3:
                pings += json.loads(await ws.recv()) == {"type": "ping"}


async def test_slow_client_is_closed_with_1013_and_resumes(cluster: Cluster) -> None:
    slow, n = cluster.slow, 1500  # a server whose client queues hold 16 events
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", slow.port))
    sock.setblocking(False)
    bearer = token("department", department="38")
    async with ws_open(slow, "/ws/departments/38", bearer, sock=sock, max_queue=1) as ws:
        await subscribed(ws)
        # The client stops reading; the server is sent more than any buffer holds.
        async with cluster.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO outbox_events (type, department, data, national_data)
                SELECT 'capacity.updated', '38', d, '{}'::jsonb
                  FROM (SELECT jsonb_build_object('n', g, 'pad', repeat('x', 4000)) AS d
                          FROM generate_series(1, $1::int) g) s
                """,
                n,
            )
            await conn.execute("NOTIFY places_outbox")
        await asyncio.sleep(2.0)
        received: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(20):
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("type") != "ping":
                        received.append(message)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert 0 < len(received) < n
    last = received[-1]["id"]
    async with ws_open(slow, "/ws/departments/38", bearer, last_event_id=last) as ws:
        rest = [await next_event(ws) for _ in range(n - len(received))]
    everything = received + rest
    assert [e["data"]["n"] for e in everything] == list(range(1, n + 1))
    assert_increasing(everything)


async def test_cli_feed_prints_events_and_resumes(cluster: Cluster) -> None:
    a, b = cluster.servers
    unit = await new_unit(cluster.pool, "01")
    async with httpx.AsyncClient() as http:
        async with ws_open(a, "/ws/departments/01", token("department", department="01")) as ws:
            await subscribed(ws)
            await unit.declare(a, http)
            last = (await next_event(ws))["id"]
        expected = [await unit.declare(b, http) for _ in range(2)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "api.cli", "feed", "--department", "01", "--url", b.http),
        *("--last-event-id", last, "--count", "2", "--json"),
        cwd=ROOT,
        env={**os.environ, "PLACES_DATABASE_URL": cluster.dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["data"]["version"] for e in lines] == expected
    assert "connected" in err.decode()


async def test_embedded_in_process_bus(world: tuple[Cluster, Embedded]) -> None:
    """No Redis configured: one worker, in-process bus, the same WebSocket behaviour."""
    server, pool = world[1].server, world[1].pool
    unit = await new_unit(pool, "38")
    bearer = token("department", department="38")
    async with httpx.AsyncClient() as http:
        async with ws_open(server, "/ws/departments/38", bearer) as ws:
            await subscribed(ws)
            await unit.declare(server, http)
            first = await next_event(ws)
            assert first["data"]["version"] == 1
        missed = [await unit.declare(server, http) for _ in range(3)]
        async with ws_open(server, "/ws/departments/38", bearer, last_event_id=first["id"]) as ws:
            got = [await next_event(ws) for _ in range(3)]
            assert versions(got, unit) == missed
            live = await unit.declare(server, http)
            assert (await next_event(ws))["data"]["version"] == live
    await expect_refusal(server, "/ws/national", 4401, bearer="x")
    await expect_refusal(server, "/ws/departments/38", 4403, bearer=token("national"))


# --- feeds by competent authority (#13) ----------------------------------------------------

TOKENS_NAME_AUTHORITIES = "authority" in inspect.signature(issue_token).parameters
"""Whether tokens carry an ``authority`` claim (#13's token scopes): until they do, a
department-role token names a department, which covers its authority only when it is the
department's only one (2A → 20R), so no department-role token covers 69M or 69D."""

CHILD_LEVEL = {"children", "reference", "origin", "measure", "reason"}


async def new_request(server: ServiceProcess, http: httpx.AsyncClient, commune: str) -> str:
    """A placement request from ``commune`` (its department's), made by the administrator of
    its authority; its id."""
    department = next(c[2] for c in COMMUNES if c[0] == commune)
    authority = next(c[6] for c in COMMUNES if c[0] == commune)
    body = {
        "department": department,
        "children": [{"age": 9, "sex": "F", "disability_profiles": []}],
        "origin": {"commune": commune},
        "care_mode": "durable",
        "urgency": "days",
        "measure": {"kind": "judicial", "decided_on": local_today(department).isoformat()},
        "reference": f"ASE-{uuid.uuid4().hex[:10]}",
    }
    r = await http.post(
        f"{server.http}/v1/requests",
        json=body,
        headers={
            "Authorization": f"Bearer {token('authority_admin', authority=authority)}",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_lyon_events_reach_69M_and_not_69D(cluster: Cluster) -> None:
    """The Métropole de Lyon and the Rhône share department 69 and not their feeds; the
    national feed gets both, with their authority."""
    a, b = cluster.servers
    lyon = await new_unit(cluster.pool, "69", "69123")
    villefranche = await new_unit(cluster.pool, "69", "69264")
    async with (
        ws_open(a, "/ws/authorities/69M", token("authority_admin", authority="69M")) as metropole,
        ws_open(b, "/ws/authorities/69D", token("authority_admin", authority="69D")) as rhone,
        ws_open(a, "/ws/national", token("national")) as national,
        httpx.AsyncClient() as http,
    ):
        for ws in (metropole, rhone, national):
            await subscribed(ws)
        await lyon.declare(b, http)
        await villefranche.declare(a, http)
        got = await next_event(metropole)
        assert got["data"]["unit_id"] == lyon.id
        assert (got["department"], got["authority"], got["data"]["authority"]) == (
            "69",
            "69M",
            "69M",
        )
        # The Rhône's first event is its own: Lyon's, declared before, never came.
        got = await next_event(rhone)
        assert got["data"]["unit_id"] == villefranche.id
        assert (got["department"], got["authority"], got["data"]["authority"]) == (
            "69",
            "69D",
            "69D",
        )
        both = [await next_event(national), await next_event(national)]
        assert [e["data"]["unit_id"] for e in both] == [lyon.id, villefranche.id]
        assert [e["authority"] for e in both] == ["69M", "69D"]
        assert [e["data"]["authority"] for e in both] == ["69M", "69D"]
    if TOKENS_NAME_AUTHORITIES:  # department-role tokens of each authority
        dept_69m = issue_token("department", authority="69M")
        async with ws_open(a, "/ws/authorities/69M", dept_69m) as ws:
            await subscribed(ws)
        await expect_refusal(a, "/ws/authorities/69D", 4403, bearer=dept_69m)


async def test_corsican_requests_reach_20R_and_its_departments(cluster: Cluster) -> None:
    """A request from Ajaccio (2A) and one from Bastia (2B) both reach the Collectivité de
    Corse's feed, and ``/ws/departments/2A`` and ``2B`` as its aliases; the national feed
    sees neither (#18)."""
    a, b = cluster.servers
    async with (
        ws_open(a, "/ws/authorities/20R", token("department", department="2A")) as corse,
        ws_open(b, "/ws/departments/2A", token("department", department="2B")) as alias_2a,
        ws_open(a, "/ws/departments/2B", token("authority_admin", authority="20R")) as alias_2b,
        ws_open(b, "/ws/national", token("national")) as national,
        httpx.AsyncClient() as http,
    ):
        for ws in (corse, alias_2a, alias_2b, national):
            await subscribed(ws)
        ajaccio = await new_request(a, http, "2A004")
        bastia = await new_request(b, http, "2B033")
        for ws in (corse, alias_2a, alias_2b):
            got = [await next_event(ws), await next_event(ws)]
            assert [e["data"]["id"] for e in got] == [ajaccio, bastia]
            assert [e["type"] for e in got] == ["request.created"] * 2
            assert [e["department"] for e in got] == ["2A", "2B"]
            assert {e["authority"] for e in got} == {e["data"]["authority"] for e in got} == {"20R"}
            assert got[0]["data"]["children"]  # the authority's own feed: the whole request
        # Nationally: nothing of either request (#18: nothing of children on the national
        # feed) — the next national event is the offer's declared after them.
        unit = await new_unit(cluster.pool, "2A")
        await unit.declare(a, http)
        got = await next_event(national)
        assert (got["type"], got["data"]["unit_id"]) == ("capacity.updated", unit.id)
        assert not any(rid in json.dumps(got) for rid in (ajaccio, bastia))
    await expect_refusal(
        a, "/ws/authorities/20R", 4403, bearer=token("department", department="38")
    )
    await expect_refusal(a, "/ws/departments/2B", 4403, bearer=token("department", department="01"))


async def test_unknown_or_shared_feeds_are_4404(cluster: Cluster) -> None:
    a = cluster.servers[0]
    admin = token("operator")
    reason = await expect_refusal(a, "/ws/departments/69", 4404, bearer=admin)
    assert "69M" in reason and "69D" in reason
    reason = await expect_refusal(a, "/ws/departments/69", 4404, bearer=token("national"))
    assert "69M" in reason and "69D" in reason
    for path in ("/ws/authorities/69", "/ws/authorities/2A", "/ws/authorities/zz"):
        reason = await expect_refusal(a, path, 4404, bearer=admin)
        assert "Autorité inconnue" in reason
    await expect_refusal(a, "/ws/departments/6AE", 4404, bearer=admin)
    await expect_refusal(a, "/ws/authorities/69M", 4401)  # the token first


async def test_cli_feed_by_authority(cluster: Cluster) -> None:
    """``places feed --authority 20R`` with its local token (a token of 2A covers 20R)."""
    a, b = cluster.servers
    async with httpx.AsyncClient() as http:
        async with ws_open(
            a, "/ws/authorities/20R", token("authority_admin", authority="20R")
        ) as ws:
            await subscribed(ws)
            await new_request(a, http, "2A004")
            last = (await next_event(ws))["id"]
        expected = await new_request(b, http, "2B033")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "api.cli", "feed", "--authority", "20R", "--url", b.http),
        *("--last-event-id", last, "--count", "1", "--json"),
        cwd=ROOT,
        env={**os.environ, "PLACES_DATABASE_URL": cluster.dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    (line,) = [json.loads(text) for text in out.decode().splitlines()]
    assert line["data"]["id"] == expected and line["authority"] == "20R"
    assert "/ws/authorities/20R" in err.decode()


async def old_relay_publish(redis_url: str, department: str, n: int) -> list[str]:
    """``n`` entries as the relay wrote them before the feeds were per authority: in the
    department's stream, chained, without ``authority``."""
    client = aioredis.from_url(redis_url)
    key = f"places:feed:{department}"
    ids: list[str] = []
    try:
        last = await client.xrevrange(key, count=1)
        prev = last[0][0].decode() if last else ""
        for i in range(n):
            message = {
                "type": "capacity.updated",
                "department": department,
                "occurred_at": "2026-11-27T10:00:00+00:00",
                "outbox_id": 10**12 + i,
                "data": {"before_0007": i},
            }
            entry = (await client.xadd(key, {"p": prev, "e": json.dumps(message)})).decode()
            ids.append(entry)
            prev = entry
    finally:
        await client.aclose()
    return ids


async def published(redis_url: str, feed: str, entries: int) -> None:
    """Wait until the relay has put ``entries`` entries in ``feed``'s stream."""
    client = aioredis.from_url(redis_url)
    try:
        for _ in range(500):
            if await client.xlen(f"places:feed:{feed}") >= entries:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{feed}: fewer than {entries} entries after 10 s")
    finally:
        await client.aclose()


async def drop_stream(redis_url: str, feed: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.delete(f"places:feed:{feed}")
    finally:
        await client.aclose()


async def test_resume_across_the_move_to_authorities(cluster: Cluster) -> None:
    """Marseille's authority has its department's code: its stream is the same, and a
    position taken before the upgrade resumes after it. Alsace's (6AE) is a new stream: a
    position from the former feed of 67 or 68 is told to reload (4410) once, and the ids of
    the new feed resume from then on — also when the former stream is gone."""
    a, b = cluster.servers
    redis_url = cluster.redis.url
    marseille = await new_unit(cluster.pool, "13")
    strasbourg = await new_unit(cluster.pool, "67")
    before_13 = await old_relay_publish(redis_url, "13", 2)
    before_67 = await old_relay_publish(redis_url, "67", 1)
    async with httpx.AsyncClient() as http:
        version_13 = await marseille.declare(a, http)
        bearer_13 = token("department", department="13")
        for path in ("/ws/departments/13", "/ws/authorities/13"):
            async with ws_open(b, path, bearer_13, last_event_id=before_13[0]) as ws:
                old, new = await next_event(ws), await next_event(ws)
            assert old["id"] == before_13[1] and old["data"] == {"before_0007": 1}
            assert (old["department"], old["authority"]) == ("13", "13")
            assert new["data"]["version"] == version_13 and new["authority"] == "13"

        bearer_67 = token("department", department="67")
        reason = await expect_refusal(
            b, "/ws/departments/67", 4410, bearer=bearer_67, last_event_id=before_67[0]
        )
        assert "67" in reason and "last_event_id" in reason
        # Reload, then connect without a position; the new feed's ids resume.
        async with ws_open(b, "/ws/departments/67", bearer_67) as ws:
            await subscribed(ws)
            await strasbourg.declare(a, http)
            first = await next_event(ws)
        assert (first["department"], first["authority"]) == ("67", "6AE")
        version = await strasbourg.declare(a, http)
        async with ws_open(b, "/ws/authorities/6AE", bearer_67, last_event_id=first["id"]) as ws:
            assert (await next_event(ws))["data"]["version"] == version

        # The former stream gone (or trimmed), the hub still refuses its positions: older
        # than the new feed, inside its history, or after its newest entry.
        between = (await old_relay_publish(redis_url, "68", 1))[0]
        await strasbourg.declare(a, http)
        await published(redis_url, "6AE", 3)
        after = (await old_relay_publish(redis_url, "68", 1))[0]
        for feed in ("67", "68"):
            await drop_stream(redis_url, feed)
        for position in (before_67[0], between, after):
            for path in ("/ws/departments/67", "/ws/authorities/6AE"):
                await expect_refusal(b, path, 4410, bearer=bearer_67, last_event_id=position)


async def test_nothing_lost_while_redis_is_down(cluster: Cluster) -> None:
    """Redis stops, 50 declarations succeed, Redis comes back EMPTY (no persistence): the
    client that stayed connected and the one that resumes get exactly those 50, in order.
    (Last of the cluster's tests: it empties the cluster's Redis.)"""
    server, other, redis, pool = *cluster.servers, cluster.redis, cluster.pool
    unit = await new_unit(pool)
    bearer = token("department", authority="69M")
    try:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            ws_open(server, LYON, bearer) as stays,
            ws_open(server, "/ws/national", token("national")) as national,
        ):
            async with ws_open(server, LYON, bearer) as leaves:
                await subscribed(stays)
                await subscribed(national)
                await subscribed(leaves)
                await unit.declare(server, http)
                first = await next_event(stays)
                assert (await next_event(leaves))["id"] == first["id"]
                await next_event(national)

            await redis.astop()
            declared = [await unit.declare(server if i % 2 else other, http) for i in range(50)]
            assert (await http.get(f"{server.http}/readyz")).status_code == 503
            await redis.astart()  # same port, no data

            got = [await next_event(stays, timeout=15) for _ in range(50)]
            assert versions(got, unit) == declared
            assert_increasing([first, *got])
            got_national = [await next_event(national, timeout=15) for _ in range(50)]
            assert versions(got_national, unit) == declared

            async with ws_open(other, LYON, bearer, last_event_id=first["id"]) as resumed:
                again = [await next_event(resumed) for _ in range(50)]
                assert [e["id"] for e in again] == [e["id"] for e in got]

            # Redis loses events already delivered to some: whoever was past them goes on;
            # whoever had not seen them is told to reload, never handed a gap.
            last_seen_by_leaver = got[-1]["id"]
            lost = [await unit.declare(server, http) for _ in range(2)]
            assert versions([await next_event(stays) for _ in range(2)], unit) == lost
            flush = aioredis.from_url(redis.url)
            await flush.flushall()
            await flush.aclose()
            after = await unit.declare(server, http)
            assert (await next_event(stays, timeout=10))["data"]["version"] == after
            await expect_refusal(
                server, LYON, 4410, bearer=bearer, last_event_id=last_seen_by_leaver
            )
    except BaseException:
        print(server.output())
        raise


async def test_a_worker_reads_more_feeds_than_the_redis_pool_holds(cluster: Cluster) -> None:
    """One blocking reader per feed: 150 feeds in one worker must neither exhaust the shared
    Redis pool (capped at 100 by redis-py) nor keep the relay from publishing."""
    from api.feeds.routes import feed_settings
    from api.settings import get_settings
    from realtime.bus import OutboxEvent, RedisBus, connect_redis
    from realtime.hub import Hub

    client = await connect_redis(cluster.redis.url)
    assert client is not None
    bus = RedisBus(client)
    hub = Hub(bus, dataclasses.replace(feed_settings(get_settings()), read_block_ms=1000))
    feeds = [f"zz{i}" for i in range(150)]
    async with contextlib.AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(hub.subscribe(f)) for f in feeds]
        base = 10**12 + random.randrange(10**9)
        await bus.publish(
            [
                OutboxEvent(base + i, "capacity.updated", f, "2026-01-01T00:00:00+00:00", {}, {})
                for i, f in enumerate(feeds)
            ]
        )
        entries = [await asyncio.wait_for(s.queue.get(), 10) for s in subs]
    assert [json.loads(e.text)["department"] for e in entries] == feeds
    assert not hub.readers
    await hub.bus.close()
    await bus.close()


async def test_subscriptions_are_audited_once_under_the_feed_authority(cluster: Cluster) -> None:
    a = cluster.servers[0]
    actor = f"admin-{uuid.uuid4().hex[:8]}"
    admin = issue_token("authority_admin", authority="69M", sub=actor)
    operator = issue_token("operator", sub=actor)
    await expect_refusal(a, "/ws/departments/69", 4404, bearer=admin)  # refused: no entry
    async with ws_open(a, LYON, admin) as lyon, ws_open(a, "/ws/national", operator) as national:
        await subscribed(lyon)
        await subscribed(national)
    rows = await cluster.pool.fetch(
        "SELECT object_type, object_id, department, authority, detail FROM audit_entries"
        " WHERE action = 'feed.subscribe' AND actor = $1 ORDER BY object_id",
        actor,
    )
    assert [dict(r) for r in rows] == [
        {
            "object_type": "feed",
            "object_id": "69M",
            "department": "69",
            "authority": "69M",
            "detail": {"path": LYON, "last_event_id": None},
        },
        {
            "object_type": "feed",
            "object_id": "national",
            "department": None,
            "authority": None,
            "detail": {"path": "/ws/national", "last_event_id": None},
        },
    ]
    # The Métropole's placement service sees its administrator's subscription in its trail.
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{a.http}/v1/audit?limit=500",
            headers={"Authorization": f"Bearer {token('department', authority='69M')}"},
        )
    assert r.status_code == 200, r.text
    assert any(i["action"] == "feed.subscribe" and i["actor"] == actor for i in r.json()["items"])
