"""The cluster of ``scripts/cluster`` (``deploy/cluster.py``), started for real on free ports
in a directory of its own: PostgreSQL primary and hot standby, Redis master, replica and three
Sentinels, two ``places run`` instances, HAProxy in front.

One cluster for the module (it takes ~20 s to start on a busy machine): the first test checks
what ``status`` says of each part, the others write through the load balancer and look where
the write lands, and the last one stops it all and checks nothing of it is left running.
"""

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.settings import get_settings
from deploy.cluster import Cluster, Ports, _alive, _cmdline
from loadtests.chaos import Chaos
from realtime.relay import APPLICATION_NAME, LOCK_ID
from tests.support.factories import bearer

pytestmark = [pytest.mark.server, pytest.mark.database, pytest.mark.timeout(300)]

MAX_LAG = 3.0
NATIONAL = bearer("national")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not pytest's temporary directory: it is private to its user, and PostgreSQL runs as
    # another one (postgres) when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="places-cluster-"))
    root.chmod(0o755)
    c = Cluster(
        root,
        Ports.free(),
        seed_scale=0.02,
        env={
            "PLACES_KEYS_DIR": os.environ["PLACES_KEYS_DIR"],  # tokens of this session
            "PLACES_WS_PING_SECONDS": "1",
            "PLACES_READ_MAX_LAG_SECONDS": str(MAX_LAG),
        },
    )
    try:
        c.up()
        yield c
    finally:
        c.down()
        shutil.rmtree(root, ignore_errors=True)


def _unit(cluster: Cluster) -> tuple[str, str, int]:
    row = cluster.psql(
        "primary",
        "SELECT u.id, s.finess, u.installed FROM units u JOIN structures s"
        " ON s.id = u.structure_id ORDER BY u.id LIMIT 1",
        "places",
    )
    unit_id, finess, installed = row.split("|")
    return unit_id, finess, int(installed)


def test_status_names_every_part_and_its_role(cluster: Cluster) -> None:
    status = cluster.status()
    assert status["url"] == f"http://127.0.0.1:{cluster.ports.lb}"
    roles = {p["part"]: p for p in status["parts"]}
    assert roles["postgres-primary"]["role"] == "primary"
    assert roles["postgres-primary"]["replicas"] == "1"  # the standby streams
    assert roles["postgres-standby"]["role"] == "standby"
    assert roles["postgres-standby"]["lag_seconds"] >= 0
    assert roles[f"redis-{cluster.ports.redis_master}"]["role"] == "master"
    replica = roles[f"redis-{cluster.ports.redis_replica}"]
    assert replica["role"] == "replica" and replica["link"] == "up"
    for port in cluster.ports.sentinels:
        assert roles[f"sentinel-{port}"]["master_port"] == cluster.ports.redis_master
    for port in cluster.ports.apis:
        assert roles[f"api-{port}"]["role"] == "ready"
    assert roles["haproxy"]["role"] == "ready"
    assert all(p["pid"] for p in status["parts"])
    # The standby was built with a replication slot, and the primary archives its WAL.
    slot = cluster.psql("primary", "SELECT active FROM pg_replication_slots")
    assert slot == "t"
    assert any(cluster.archive.iterdir())


def test_up_again_starts_nothing_new(cluster: Cluster) -> None:
    before = {p["part"]: p["pid"] for p in cluster.status()["parts"]}
    Cluster(cluster.root).up_redis(cluster.ports.redis_master)  # the saved ports, running
    for port in cluster.ports.apis:
        cluster.up_api(port)
    cluster.up_lb()
    assert {p["part"]: p["pid"] for p in cluster.status()["parts"]} == before


async def test_a_declaration_through_haproxy_reaches_the_standby(cluster: Cluster) -> None:
    unit_id, finess, installed = _unit(cluster)
    headers = bearer("structure", finess=finess)
    seen: set[str] = set()
    async with httpx.AsyncClient(base_url=cluster.lb_url, timeout=10) as client:
        for occupied in (installed, installed - 1):  # two declarations, two instances
            r = await client.put(
                f"/v1/units/{unit_id}/capacity",
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                json={
                    "temporality": "current",
                    "installed": installed,
                    "occupied": occupied,
                    "reserved": 0,
                    "closed": 0,
                    "available": installed - occupied,
                },
            )
            assert r.status_code == 200, r.text
            seen.add(str(r.json()["version"]))
    version = max(seen, key=int)
    deadline = time.monotonic() + 10
    found = ""
    while time.monotonic() < deadline:
        found = cluster.psql(
            "standby",
            "SELECT max(version) FROM capacity_snapshots"
            f" WHERE unit_id = '{unit_id}' AND temporality = 'current'",
            "places",
        )
        if found == version:
            break
        await asyncio.sleep(0.1)
    assert found == version


async def declare(
    client: httpx.AsyncClient, unit_id: str, headers: dict[str, str], installed: int, free: int
) -> int:
    """One declaration through the load balancer, retried with its Idempotency-Key while an
    instance is down (a connection cut, a 502/503 of the proxy): the version it made."""
    key = str(uuid.uuid4())
    body = {
        "temporality": "current",
        "installed": installed,
        "occupied": installed - free,
        "reserved": 0,
        "closed": 0,
        "available": free,
    }
    for _ in range(100):
        try:
            r = await client.put(
                f"/v1/units/{unit_id}/capacity",
                headers={**headers, "Idempotency-Key": key},
                json=body,
            )
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            continue
        if r.status_code in (502, 503, 504):
            await asyncio.sleep(0.2)
            continue
        assert r.status_code == 200, r.text
        return int(r.json()["version"])
    raise AssertionError("no instance took the declaration")


async def ready(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as c:
        return (await c.get(f"http://127.0.0.1:{port}/readyz")).json()  # type: ignore[no-any-return]


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


async def standby_serves(cluster: Cluster) -> bool:
    states = [await ready(p) for p in cluster.ports.apis]
    return all(s["standby"]["reads"] == "standby" for s in states)


async def test_reads_go_to_the_standby_within_its_lag_and_yours_to_the_primary(
    cluster: Cluster,
) -> None:
    """Replay paused on the standby: another subject's read comes from the standby (the
    declaration is not there yet), the writer's own from the primary; beyond the lag, every
    read from the primary; replay resumed, the standby serves again."""
    unit_id, finess, installed = _unit(cluster)
    writer = bearer("structure", finess=finess)
    path = f"/fhir/Location/{unit_id}"
    async with httpx.AsyncClient(base_url=cluster.lb_url, timeout=10) as client:
        await until(lambda: standby_serves(cluster), 30, "the standby serves reads")
        await declare(client, unit_id, writer, installed, 1)
        await until(lambda: standby_serves(cluster), 30, "the standby caught up")
        await asyncio.sleep(MAX_LAG + 1.5)  # the writer's window is over
        before = (await client.get(path, headers=NATIONAL)).json()
        cluster.psql("standby", "SELECT pg_wal_replay_pause()", "places")
        try:
            version = await declare(client, unit_id, writer, installed, 2)
            mine = (await client.get(path, headers=writer)).json()
            lagging = await client.get(path, headers=NATIONAL)
            assert lagging.json() == before  # the standby, lagging but within bounds
            assert mine != before  # read-your-writes: the primary
            # The lagging snapshot says which feed position it is consistent with: resuming
            # there replays the declaration it lacks.
            position = dict(
                p.split("=") for p in lagging.headers["places-feed-position"].split(", ")
            )["national"]
            async with connect(
                f"ws://127.0.0.1:{cluster.ports.apis[0]}/ws/national?last_event_id={position}",
                additional_headers=NATIONAL,
                proxy=None,
            ) as ws:
                await event_of(ws, unit_id, version, 10)
            # Beyond the bound every read is the primary's, and /readyz says why.
            await until(lambda: _all_lagging(cluster), MAX_LAG + 5, "the standby reported lagging")
            assert (await client.get(path, headers=NATIONAL)).json() == mine
            state = (await ready(cluster.ports.apis[0]))["standby"]
            assert state["state"] == "lagging" and state["lag_seconds"] > MAX_LAG
        finally:
            cluster.psql("standby", "SELECT pg_wal_replay_resume()", "places")
        await until(lambda: standby_serves(cluster), 30, "the standby serves again")
        assert (await client.get(path, headers=NATIONAL)).json() == mine


async def _all_lagging(cluster: Cluster) -> bool:
    states = [await ready(p) for p in cluster.ports.apis]
    return all(s["standby"]["state"] == "lagging" for s in states)


async def test_standby_down_reads_on_the_primary(cluster: Cluster) -> None:
    unit_id, finess, installed = _unit(cluster)
    writer = bearer("structure", finess=finess)
    path = f"/fhir/Location/{unit_id}"
    cluster.stop("standby")
    try:
        async with httpx.AsyncClient(base_url=cluster.lb_url, timeout=10) as client:

            async def down() -> bool:
                states = [await ready(p) for p in cluster.ports.apis]
                return all(s["status"] == "ok" and s["standby"]["state"] == "down" for s in states)

            await until(down, 10, "the standby reported down, instances still ready")
            await declare(client, unit_id, writer, installed, 3)
            await asyncio.sleep(MAX_LAG + 1.5)  # not the writer's window: the routing
            for _ in range(4):  # every instance
                r = await client.get(path, headers=NATIONAL)
                assert r.status_code == 200
                assert r.json() == (await client.get(path, headers=writer)).json()
    finally:
        cluster.up_standby()
    await until(lambda: standby_serves(cluster), 30, "the standby back in service")


def relay_holder(cluster: Cluster) -> int | None:
    """The pid of the process whose relay holds the advisory lock (its connection's
    application_name, realtime.relay)."""
    name = cluster.psql(
        "primary",
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        f" WHERE l.locktype = 'advisory' AND l.objid = {LOCK_ID} AND l.granted",
        "places",
    )
    return int(name.split()[-1]) if name.startswith(APPLICATION_NAME) else None


async def next_event(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") != "ping":
                return message  # type: ignore[no-any-return]


async def subscribed(ws: ClientConnection) -> None:
    """The first ping: the server sends it once the subscription is live."""
    async with asyncio.timeout(10):
        while json.loads(await ws.recv()).get("type") != "ping":
            pass


async def event_of(
    ws: ClientConnection, unit_id: str, version: int, timeout: float
) -> dict[str, Any]:
    """The event of ``unit_id``'s ``version`` on ``ws`` (with ``waited``: seconds it took)."""
    start = time.monotonic()
    while True:
        event = await next_event(ws, timeout - (time.monotonic() - start))
        data = event["data"]
        if data.get("unit_id") == unit_id and data.get("version") == version:
            return {**event, "waited": time.monotonic() - start}


async def test_another_instance_relays_when_the_holder_is_killed(cluster: Cluster) -> None:
    """kill -9 the instance whose relay holds the lock: its session dies with it, the lock
    with the session, and the other instance's relay publishes the next declaration."""
    await until(lambda: _async(relay_holder(cluster) is not None), 10, "a relay holds the lock")
    holder = relay_holder(cluster)
    ports = {cluster.pid(f"api-{p}"): p for p in cluster.ports.apis}
    assert holder in ports, (holder, ports)
    victim = ports[holder]
    survivor = next(p for p in cluster.ports.apis if p != victim)
    unit_id, finess, installed = _unit(cluster)
    try:
        async with (
            httpx.AsyncClient(base_url=cluster.lb_url, timeout=10) as client,
            connect(
                f"ws://127.0.0.1:{survivor}/ws/national",
                additional_headers=NATIONAL,
                proxy=None,
                open_timeout=10,
            ) as ws,
        ):
            await subscribed(ws)
            os.kill(holder, signal.SIGKILL)
            version = await declare(
                client, unit_id, bearer("structure", finess=finess), installed, 1
            )
            waited = (await event_of(ws, unit_id, version, 20))["waited"]
            assert relay_holder(cluster) == cluster.pid(f"api-{survivor}")
            print(f"relay taken over: event delivered {waited:.2f} s after the declaration")
    finally:
        cluster.up_api(victim)
        cluster.wait_api(victim)


async def _async(value: bool) -> bool:
    return value


async def test_redis_master_stopped_sentinel_fails_over_and_feeds_resume(
    cluster: Cluster,
) -> None:
    """The Redis master is killed: the Sentinels promote the replica, the instances follow
    them, the relay publishes there, and a client that reconnects with its position gets the
    declarations made meanwhile, once, in order."""
    master = cluster.ports.redis_master
    unit_id, finess, installed = _unit(cluster)
    writer = bearer("structure", finess=finess)
    port = cluster.ports.apis[0]
    url = f"ws://127.0.0.1:{port}/ws/national"
    async with httpx.AsyncClient(base_url=cluster.lb_url, timeout=10) as client:
        async with connect(url, additional_headers=NATIONAL, proxy=None) as ws:
            await subscribed(ws)
            first = await declare(client, unit_id, writer, installed, 0)
            position = (await event_of(ws, unit_id, first, 10))["id"]
        statuses: list[str] = []

        async def watch() -> None:  # the instances' readiness during the failover
            while True:
                statuses.extend([(await ready(p))["status"] for p in cluster.ports.apis])
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        cluster.stop(f"redis-{master}", signal.SIGKILL)
        declared = [await declare(client, unit_id, writer, installed, i % 3) for i in range(5)]

        async def promoted() -> bool:
            return cluster.redis(cluster.ports.redis_replica, "ROLE").startswith("master")

        await until(promoted, 30, "the replica promoted")
        failover = time.monotonic() - started
        await asyncio.sleep(1)
        watcher.cancel()
        # PLACES_REDIS_GRACE_SECONDS (30 in the cluster): no instance left the rotation.
        assert statuses and set(statuses) == {"ok"}, statuses
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(got) < len(declared) and time.monotonic() < deadline:
            try:
                async with connect(
                    f"{url}?last_event_id={position}", additional_headers=NATIONAL, proxy=None
                ) as ws:
                    while len(got) < len(declared):
                        e = await next_event(ws, 5)
                        if e["data"].get("unit_id") == unit_id:
                            got.append(e)
            except (OSError, TimeoutError, ConnectionClosed):
                got.clear()
                await asyncio.sleep(0.5)
        assert [e["data"]["version"] for e in got] == declared
        print(f"Redis failover: replica promoted {failover:.1f} s after the kill")
    # The former master comes back as a replica of the new one (cluster.up_redis asks the
    # Sentinels), and the status says so.
    cluster.up_redis(master)
    roles = {p["part"]: p for p in cluster.status()["parts"]}
    assert roles[f"redis-{master}"]["role"] == "replica"
    assert roles[f"redis-{cluster.ports.redis_replica}"]["role"] == "master"


async def test_chaos_kill_an_instance_under_load(cluster: Cluster) -> None:
    """The chaos script's ``api`` scenario, reduced (20 feed clients, 5 declarations/s):
    nothing acknowledged is lost, no event lost, duplicated or out of order, and the fault
    is over for the clients within 10 s."""
    chaos = Chaos(cluster, get_settings(), rate=5, clients=20)
    await chaos.prepare()
    result = await chaos.run("api", before=2, after=3)
    print(result)
    assert result["feed_clients"] == 20
    assert result["declarations_acked"] > 20 and result["declarations_refused"] == 0
    assert result["acked_writes_missing"] == 0
    assert result["events_lost"] == result["events_duplicated"] == 0
    assert result["events_out_of_order"] == 0
    assert result["writes_disturbed_s"] < 10


def test_restore_drill_recovers_to_a_point_in_time(cluster: Cluster) -> None:
    """A base backup, a point in time T, a change after T: the drill restores the backup
    into a scratch cluster, replays the WAL archive up to T, and finds T's data, without the
    later change (``scripts/cluster drill``)."""
    base = cluster.backup()
    assert (base / "PG_VERSION").exists()
    result = cluster.drill(base)
    print(result)
    assert result["ok"], result
    assert result["marks_restored"] == result["marks_at_target"]
    assert result["marks_after_target"] != result["marks_at_target"]
    assert result["places_figures_restored"] == result["places_figures_at_target"]
    assert not (cluster.root / "drill").exists()


def test_down_stops_everything_it_started(cluster: Cluster) -> None:
    pids = [p["pid"] for p in cluster.status()["parts"]]
    cluster.down()
    status = cluster.status()
    left = [p for p in status["parts"] if p["pid"] is not None or p["role"] != "stopped"]
    assert not left
    for pid in pids:
        assert not _alive(pid), (pid, _cmdline(pid))
