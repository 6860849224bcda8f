"""The cluster of ``scripts/cluster`` (``deploy/cluster.py``), started for real on free ports
in a directory of its own: PostgreSQL primary and hot standby, Redis master, replica and three
Sentinels, two ``places run`` instances, HAProxy in front.

One cluster for the module (it takes ~20 s to start on a busy machine): the first test checks
what ``status`` says of each part, the others write through the load balancer and look where
the write lands, and the last one stops it all and checks nothing of it is left running.
"""

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.cluster import Cluster, Ports, _alive, _cmdline
from tests.support.factories import bearer

pytestmark = [pytest.mark.server, pytest.mark.database, pytest.mark.timeout(300)]


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


def test_down_stops_everything_it_started(cluster: Cluster) -> None:
    pids = [p["pid"] for p in cluster.status()["parts"]]
    cluster.down()
    status = cluster.status()
    left = [p for p in status["parts"] if p["pid"] is not None or p["role"] != "stopped"]
    assert not left
    for pid in pids:
        assert not _alive(pid), (pid, _cmdline(pid))
