"""Chaos tests on the cluster of ``scripts/cluster`` (``deploy/cluster.py``): each scenario
inflicts one fault under a steady load — declarations through HAProxy, each retried with its
Idempotency-Key until acknowledged, lag-tolerant reads, and feed clients on the national
WebSocket feed through HAProxy — and prints what it measured:

- acknowledged declarations missing from the primary afterwards (target 0);
- per feed client, acknowledged declarations whose event never came (lost), came twice
  (duplicated) or out of order per unit (target 0 each); a client closed with 4410 (a gap
  it is told of) reloads, like a dashboard, and is then only held to what was acknowledged
  after its reload;
- recovery: the time the fault was visible to clients (last failed attempt, or longest
  silence of the feeds), and the scenario's own measure (HAProxy taking the instance out,
  another relay publishing, Sentinel's failover, the primary back, reads on the primary).

Scenarios: ``api`` (kill -9 one instance), ``relay`` (kill -9 the instance holding the relay
lock), ``redis`` (stop the Redis master), ``primary`` (restart PostgreSQL's primary),
``standby`` (stop the standby); and ``roll``, a rolling deploy (``scripts/cluster roll``:
each instance restarted in turn, migrations first). Targets: recovery < 10 s per instance
fault, < 30 s for the Redis failover.

    scripts/cluster up
    .venv-dev/bin/python -m loadtests.chaos --scenario all --clients 200 --rate 20
    .venv-dev/bin/python -m loadtests.chaos --own --scenario relay --clients 20   # own cluster

Against the running cluster (``var/cluster``) by default; ``--own`` starts one on free ports
in a temporary directory (without the per-subject limits) and stops it after.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from api.auth import issue_token
from api.settings import Settings
from deploy.cluster import Cluster, Ports
from loadtests.harness import BENCH_LIMITS
from realtime.relay import APPLICATION_NAME, LOCK_ID

SCENARIOS = ("api", "relay", "redis", "primary", "standby")


@dataclass
class Load:
    """What the load saw: acknowledged declarations, failures, each client's events."""

    acked: dict[tuple[str, int], float] = field(default_factory=dict)
    """(unit, version) → when it was acknowledged (monotonic)."""
    attempts_failed: list[float] = field(default_factory=list)
    """When a write attempt failed (connection cut, 5xx), to be retried with its key."""
    refused: list[str] = field(default_factory=list)
    """Declarations given up (a 4xx, or no instance for 60 s): never acknowledged."""
    failures: dict[str, int] = field(default_factory=dict)
    """Failed write attempts by status code or exception."""
    reads_failed: list[float] = field(default_factory=list)
    reads_ok: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Client:
    """One feed client: what it received, per (unit, version), and its reloads."""

    n: int
    received: list[tuple[str, int, float]] = field(default_factory=list)
    reloads: list[float] = field(default_factory=list)
    reconnects: int = 0
    connected_at: float | None = None


class Chaos:
    def __init__(self, cluster: Cluster, settings: Settings, rate: float, clients: int) -> None:
        self.cluster = cluster
        self.settings = settings
        self.rate = rate
        self.n_clients = clients
        self.units: list[tuple[str, str, int]] = []
        self.tokens: dict[str, str] = {}

    async def prepare(self) -> None:
        conn = await asyncpg.connect(self.cluster.dsn("primary", "postgres"))
        try:
            rows = await conn.fetch(
                "SELECT u.id::text, s.finess, u.installed FROM units u JOIN structures s"
                " ON s.id = u.structure_id WHERE u.installed > 0 ORDER BY u.id LIMIT 200"
            )
        finally:
            await conn.close()
        self.units = [(r[0], r[1], r[2]) for r in rows]
        for _, finess, _ in self.units:
            if finess not in self.tokens:
                self.tokens[finess] = issue_token(
                    "structure", finess=finess, settings=self.settings
                )

    # -- load ------------------------------------------------------------------------

    async def declare(self, http: httpx.AsyncClient, load: Load, rng: random.Random) -> None:
        unit_id, finess, installed = rng.choice(self.units)
        free = rng.randint(0, min(installed, 3))
        key = str(uuid.uuid4())
        body = {
            "temporality": "current",
            "installed": installed,
            "occupied": installed - free,
            "reserved": 0,
            "closed": 0,
            "available": free,
        }
        headers = {"Authorization": f"Bearer {self.tokens[finess]}", "Idempotency-Key": key}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = await http.put(f"/v1/units/{unit_id}/capacity", headers=headers, json=body)
            except httpx.TransportError as exc:
                load.attempts_failed.append(time.monotonic())
                load.failures[type(exc).__name__] = load.failures.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.2)
                continue
            if r.status_code >= 500 or r.status_code == 429:
                load.attempts_failed.append(time.monotonic())
                load.failures[str(r.status_code)] = load.failures.get(str(r.status_code), 0) + 1
                await asyncio.sleep(0.2)
                continue
            if r.status_code == 200:
                load.acked[(unit_id, int(r.json()["version"]))] = time.monotonic()
            else:
                load.refused.append(f"{r.status_code} {r.text[:200]}")
            return
        load.refused.append("no instance answered for 60 s")

    async def writer(self, load: Load) -> None:
        rng = random.Random(7)
        async with httpx.AsyncClient(base_url=self.cluster.lb_url, timeout=10) as http:
            tasks: set[asyncio.Task[None]] = set()
            while not load.stop.is_set():
                task = asyncio.create_task(self.declare(http, load, rng))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(1 / self.rate)
            await asyncio.gather(*tasks)

    async def reader(self, load: Load) -> None:
        """Lag-tolerant reads (FHIR Location) as the national steering would make them."""
        token = issue_token("national", sub="chaos-reader", settings=self.settings)
        rng = random.Random(3)
        async with httpx.AsyncClient(base_url=self.cluster.lb_url, timeout=10) as http:
            while not load.stop.is_set():
                unit_id = rng.choice(self.units)[0]
                try:
                    r = await http.get(
                        f"/fhir/Location/{unit_id}", headers={"Authorization": f"Bearer {token}"}
                    )
                    if r.status_code == 200:
                        load.reads_ok += 1
                    else:
                        load.reads_failed.append(time.monotonic())
                except httpx.TransportError:
                    load.reads_failed.append(time.monotonic())
                await asyncio.sleep(0.2)

    async def feed_client(self, client: Client, load: Load, ready: asyncio.Event) -> None:
        token = issue_token("national", sub=f"chaos-feed-{client.n}", settings=self.settings)
        ws_url = self.cluster.lb_url.replace("http://", "ws://") + "/ws/national"
        last: str | None = None
        while not load.stop.is_set():
            url = ws_url + (f"?last_event_id={last}" if last else "")
            try:
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    proxy=None,
                    open_timeout=10,
                    close_timeout=2,
                ) as ws:
                    async for raw in ws:
                        message = json.loads(raw)
                        if message.get("type") == "ping":
                            if client.connected_at is None:
                                client.connected_at = time.monotonic()
                                ready.set()
                            continue
                        last = message["id"]
                        data = message["data"]
                        if "unit_id" in data and "version" in data:
                            client.received.append(
                                (data["unit_id"], int(data["version"]), time.monotonic())
                            )
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code == 4410:  # told of a gap: reload the snapshot, start live
                    client.reloads.append(time.monotonic())
                    last = None
            except (OSError, TimeoutError, InvalidHandshake):
                pass  # refused (the proxy's 503 while an instance is down), unreachable
            if load.stop.is_set():
                return
            client.reconnects += 1
            await asyncio.sleep(0.2 + random.random() * 0.3)

    # -- faults ------------------------------------------------------------------------

    def relay_holder(self) -> int | None:
        name = self.cluster.psql(
            "primary",
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            f" WHERE l.locktype = 'advisory' AND l.objid = {LOCK_ID} AND l.granted",
            "places",
        )
        return int(name.split()[-1]) if name.startswith(APPLICATION_NAME) else None

    def api_port_of(self, pid: int | None) -> int | None:
        return next(
            (p for p in self.cluster.ports.apis if self.cluster.pid(f"api-{p}") == pid), None
        )

    async def until(self, predicate: Any, timeout: float) -> float | None:
        """Seconds until ``predicate()`` (sync) holds, or None."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if await asyncio.to_thread(predicate):
                return time.monotonic() - start
            await asyncio.sleep(0.1)
        return None

    def lb_ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.cluster.lb_url}/readyz", timeout=1).status_code == 200
        return False

    def instance_state(self, port: int) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return dict(r.json())
        return {}

    async def fault(self, scenario: str) -> dict[str, Any]:
        """Inflict the fault, wait for the cluster's own recovery; what it measured."""
        c = self.cluster
        out: dict[str, Any] = {}
        if scenario == "api":
            holder = self.relay_holder()
            port = next((p for p in c.ports.apis if c.pid(f"api-{p}") != holder), c.ports.apis[0])
            os.kill(c.pid(f"api-{port}") or 0, signal.SIGKILL)
            out["killed"] = f"api-{port}"
            await asyncio.sleep(8)
            await asyncio.to_thread(c.up_api, port)
            await asyncio.to_thread(c.wait_api, port)
        elif scenario == "relay":
            holder = self.relay_holder()
            holder_port = self.api_port_of(holder)
            assert holder and holder_port, "no relay holds the lock"
            os.kill(holder, signal.SIGKILL)
            out["killed"] = f"api-{holder_port} (relay holder)"
            out["relay_taken_over_s"] = await self.until(
                lambda: self.relay_holder() not in (None, holder), 30
            )
            await asyncio.to_thread(c.up_api, holder_port)
            await asyncio.to_thread(c.wait_api, holder_port)
        elif scenario == "redis":
            master = c._current_master() or c.ports.redis_master
            other = next(p for p in (c.ports.redis_master, c.ports.redis_replica) if p != master)
            c.stop(f"redis-{master}")
            out["stopped"] = f"redis-{master}"
            out["failover_s"] = await self.until(
                lambda: c.redis(other, "ROLE").startswith("master"), 60
            )
            await asyncio.sleep(2)
            await asyncio.to_thread(c.up_redis, master)  # back as a replica of the new master
        elif scenario == "primary":
            t0 = time.monotonic()
            await asyncio.to_thread(c.restart_pg, "primary")
            out["pg_restarted_s"] = round(time.monotonic() - t0, 2)
            out["readyz_green_s"] = await self.until(
                lambda: all(self.instance_state(p).get("status") == "ok" for p in c.ports.apis),
                60,
            )
            out["standby_caught_up_s"] = await self.until(
                lambda: all(
                    self.instance_state(p).get("standby", {}).get("lag_bytes") == 0
                    for p in c.ports.apis
                ),
                60,
            )
        elif scenario == "roll":
            out["rolled"] = await asyncio.to_thread(c.roll)
        elif scenario == "standby":
            c.stop("standby")
            out["stopped"] = "postgres-standby"
            out["reads_on_primary_s"] = await self.until(
                lambda: all(
                    self.instance_state(p).get("standby", {}).get("reads") == "primary"
                    for p in c.ports.apis
                ),
                30,
            )
            await asyncio.sleep(3)
            await asyncio.to_thread(c.up_standby)
            out["standby_back_s"] = await self.until(
                lambda: all(
                    self.instance_state(p).get("standby", {}).get("reads") == "standby"
                    for p in c.ports.apis
                ),
                60,
            )
        else:
            raise ValueError(scenario)
        return out

    # -- one scenario ------------------------------------------------------------------

    async def run(self, scenario: str, before: float = 5, after: float = 10) -> dict[str, Any]:
        load = Load()
        clients = [Client(i) for i in range(self.n_clients)]
        readies = [asyncio.Event() for _ in clients]
        feeds = [
            asyncio.create_task(self.feed_client(cl, load, ev))
            for cl, ev in zip(clients, readies, strict=True)
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await asyncio.gather(*(ev.wait() for ev in readies))
        writer = asyncio.create_task(self.writer(load))
        reader = asyncio.create_task(self.reader(load))
        await asyncio.sleep(before)
        fault_at = time.monotonic()
        measured = await self.fault(scenario)
        await asyncio.sleep(after)
        load.stop.set()
        await writer
        await reader
        # The last events of the last declarations: give them time to arrive.
        for _ in range(30):
            if all(_complete(cl, load) for cl in clients if cl.connected_at):
                break
            await asyncio.sleep(0.5)
        for task in feeds:
            task.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)
        result = self.report(scenario, load, clients, fault_at, measured)
        result["acked_writes_missing"] = await self.acked_missing(load.acked)
        return result

    def report(
        self,
        scenario: str,
        load: Load,
        clients: list[Client],
        fault_at: float,
        measured: dict[str, Any],
    ) -> dict[str, Any]:
        lost = duplicated = disordered = 0
        reloads = 0
        delivery = []
        for cl in clients:
            if cl.connected_at is None:
                continue
            reloads += len(cl.reloads)
            since = max([cl.connected_at, *cl.reloads])
            expected = {k for k, t in load.acked.items() if t > since + 1.0}
            seen: dict[tuple[str, int], int] = {}
            last_version: dict[str, int] = {}
            for unit, version, at in cl.received:
                seen[(unit, version)] = seen.get((unit, version), 0) + 1
                if version < last_version.get(unit, 0):
                    disordered += 1
                last_version[unit] = max(version, last_version.get(unit, 0))
                acked_at = load.acked.get((unit, version))
                if acked_at is not None:
                    delivery.append(at - acked_at)
            missing = expected - seen.keys()
            lost += len(missing)
            if missing and os.environ.get("CHAOS_DEBUG"):
                when = sorted(round(load.acked[k] - fault_at, 2) for k in missing)
                print(
                    f"client {cl.n}: {len(missing)} missing, acked at {when[:10]}…{when[-3:]}"
                    f" (fault at 0), connected {round(cl.connected_at - fault_at, 2)},"
                    f" reconnects {cl.reconnects}, received {len(cl.received)}"
                )
            duplicated += sum(n - 1 for n in seen.values() if n > 1)
        failed_after = [t - fault_at for t in load.attempts_failed if t >= fault_at]
        reads_failed_after = [t - fault_at for t in load.reads_failed if t >= fault_at]
        delivery.sort()
        return {
            "scenario": scenario,
            **measured,
            "declarations_acked": len(load.acked),
            "declarations_refused": len(load.refused),
            "write_attempts_failed": len(load.attempts_failed),
            "write_failures": load.failures,
            "writes_disturbed_s": round(max(failed_after), 2) if failed_after else 0.0,
            "reads_ok": load.reads_ok,
            "reads_failed": len(load.reads_failed),
            "reads_disturbed_s": round(max(reads_failed_after), 2) if reads_failed_after else 0.0,
            "feed_clients": sum(1 for cl in clients if cl.connected_at),
            "feed_reconnects": sum(cl.reconnects for cl in clients),
            "feed_reloads_4410": reloads,
            "events_lost": lost,
            "events_duplicated": duplicated,
            "events_out_of_order": disordered,
            "delivery_p50_s": round(delivery[len(delivery) // 2], 3) if delivery else None,
            "delivery_max_s": round(delivery[-1], 3) if delivery else None,
            "refusals": sorted(set(load.refused))[:3],
        }

    async def acked_missing(self, acked: dict[tuple[str, int], float]) -> int:
        """Acknowledged declarations the primary does not hold (every version of a unit is
        a row of ``capacity_declarations``)."""
        if not acked:
            return 0
        conn = await asyncpg.connect(self.cluster.dsn("primary", "postgres"))
        try:
            rows = await conn.fetch(
                "SELECT unit_id::text, version FROM capacity_declarations"
                " WHERE unit_id = ANY($1::uuid[]) AND temporality = 'current'",
                list({u for u, _ in acked}),
            )
        finally:
            await conn.close()
        have = {(r[0], r[1]) for r in rows}
        return sum(1 for k in acked if k not in have)


def _complete(client: Client, load: Load) -> bool:
    since = max([client.connected_at or 0.0, *client.reloads])
    got = {(u, v) for u, v, _ in client.received}
    return all(k in got for k, t in load.acked.items() if t > since + 1.0)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    own_root: Path | None = None
    if args.own:
        own_root = Path(tempfile.mkdtemp(prefix="places-chaos-"))
        own_root.chmod(0o755)
        cluster = Cluster(
            own_root, Ports.free(), seed_scale=args.seed_scale, env=dict(BENCH_LIMITS)
        )
        await asyncio.to_thread(cluster.up)
    else:
        cluster = Cluster()
    keys = cluster.root / "keys"
    settings = Settings(keys_dir=keys, local_roles=True)  # the cluster's signing keys
    results = []
    try:
        chaos = Chaos(cluster, settings, args.rate, args.clients)
        await chaos.prepare()
        for scenario in SCENARIOS if args.scenario == "all" else (args.scenario,):
            result = await chaos.run(scenario, before=args.before, after=args.after)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if own_root is not None:
            await asyncio.to_thread(cluster.down)
            shutil.rmtree(own_root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "roll", "all"], default="all")
    parser.add_argument("--clients", type=int, default=200, help="Feed clients.")
    parser.add_argument("--rate", type=float, default=20, help="Declarations per second.")
    parser.add_argument("--before", type=float, default=5, help="Seconds of load before.")
    parser.add_argument("--after", type=float, default=10, help="Seconds of load after.")
    parser.add_argument("--own", action="store_true", help="Start a cluster of its own.")
    parser.add_argument("--seed-scale", type=float, default=0.02)
    asyncio.run(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
