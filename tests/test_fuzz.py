"""Schema-driven fuzzing (issue 14): schemathesis runs over ``/openapi.json`` of the service as
deployed (``places run`` on a database and a Redis of its own), once without a token and
once with each role's, and every answer must be documented: no 5xx, every status listed for
its operation, its media type the documented one, and its body valid against the documented
schema.

How to run only this: ``scripts/test -m server -k fuzz`` (or
``.venv-dev/bin/python -m pytest tests/test_fuzz.py``). The run is bounded: at most
``MAX_EXAMPLES`` generated cases per operation and phase, with schemathesis' deterministic
generation, so the same code gives the same cases in CI. A failure prints schemathesis'
report: each case with a ``curl`` line that reproduces it against a server of one's own.

The fuzzer writes (requests, holds, declarations, structures…), which is why it has a
database of its own, dropped after; its Redis is its own too, so its events and counters
never reach the suite's. The database holds an establishment, a carer, waiting, held and
placed requests, and the scoped tokens name them: schemathesis draws path identifiers and
the ``request_id``/``target.id`` of bodies from those half of the time (``dictionaries`` in
its configuration), so operations get past their 404 into their real logic.
"""

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import auth
from api.db import create_pool, drop_database
from loadtests.harness import ROOT, RedisServer, ServiceProcess
from tests.support.database import create_fixture_database
from tests.support.env import BASE_DSN, TEST_DB
from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    idem,
    make_carer,
    make_structure,
    new_request,
)

pytestmark = [pytest.mark.database, pytest.mark.server, pytest.mark.timeout(300)]

ROLES: tuple[str, ...] = auth.ROLES
"""Every role the service knows gets its own run (plus one without a token). A role's scope
claim (``auth.SCOPE_CLAIM``) is filled from the seeded data in ``scope_for``; a new role
needs nothing here unless its claim is a new one."""
ANONYMOUS = "anonymous"

MAX_EXAMPLES = 20
"""Generated cases per operation and phase (the coverage phase, deterministic, adds its own:
about 2,000 cases per identity in all; the six runs take about 1½ minutes on 2 cores)."""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
CONCURRENT_RUNS = 2
"""Identities fuzzed at once, against as many workers: one run alternates between the fuzzer
and the server, so two keep both cores of the CI machine busy."""
SERVER_ENV: dict[str, str | None] = {}
"""Settings of the fuzzed server beyond the suite's (e.g. rate limits high enough that the
fuzz measures conformance, not throttling; a 429 would be documented all the same)."""


@dataclass
class World:
    """The fuzzed server and the identifiers its database holds."""

    server: ServiceProcess
    finess: str = ""
    structure_ids: list[str] = field(default_factory=list)
    unit_ids: list[str] = field(default_factory=list)
    carer_ids: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    hold_ids: list[str] = field(default_factory=list)
    placement_ids: list[str] = field(default_factory=list)

    def scope_for(self, role: str) -> dict[str, str]:
        claim = auth.SCOPE_CLAIM.get(role)
        values = {"finess": self.finess, "carer_id": self.carer_ids[0], "authority": AUTHORITY}
        return {claim: values[claim]} if claim else {}


async def _seed(world: World, dsn: str) -> None:
    """An establishment with two units (one with free places), a carer with free places,
    and requests waiting, held (on the unit and on the carer) and placed, made through the
    API like any client would."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        s = await make_structure(
            pool, units=[{"name": "Unité A", "installed": 10}, {"name": "Unité B"}]
        )
        carer = str(await make_carer(pool, capacity=4))
    finally:
        await pool.close()
    world.finess = s["finess"]
    world.structure_ids = [str(s["id"])]
    world.unit_ids = [str(u) for u in s["unit_ids"]]
    world.carer_ids = [carer]
    async with httpx.AsyncClient(base_url=world.server.http, timeout=30) as client:
        r = await client.put(
            f"/v1/units/{world.unit_ids[0]}/capacity",
            headers={**bearer("structure", finess=world.finess), **idem()},
            json={"temporality": "current", "installed": 10, "occupied": 4, "available": 6},
        )
        assert r.status_code == 200, r.text
        r = await client.put(
            f"/v1/foster-carers/{carer}/availability",
            headers=bearer("carer", carer_id=carer),
            json={"available_places": 4, "status": "active"},
        )
        assert r.status_code == 200, r.text
        requests = [await new_request(client) for _ in range(4)]
        world.request_ids = [r["id"] for r in requests]
        for request, (kind, target) in zip(
            requests[1:],
            [("unit", world.unit_ids[0]), ("carer", carer), ("unit", world.unit_ids[0])],
            strict=True,
        ):
            r = await client.post(
                "/v1/holds",
                json={"request_id": request["id"], "target": {"kind": kind, "id": target}},
                headers=dept(),
            )
            assert r.status_code == 201, r.text
            world.hold_ids.append(r.json()["id"])
        r = await client.post(f"/v1/holds/{world.hold_ids[-1]}/admit", headers=dept())
        assert r.status_code == 200, r.text
        world.placement_ids = [world.hold_ids[-1]]


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    dsn = f"{BASE_DSN}/{TEST_DB}_fuzz"
    redis = RedisServer()
    await redis.astart()
    server = ServiceProcess(dsn, redis.url, workers=CONCURRENT_RUNS, **SERVER_ENV)
    server.spawn()  # importing the app is most of the start-up: meanwhile, the database
    try:
        await create_fixture_database(dsn)
        await asyncio.to_thread(server.wait_ready, 90, "/readyz", True)
        world = World(server)
        await _seed(world, dsn)
        yield world
    finally:
        await server.astop()
        await redis.astop()
        await drop_database(dsn)


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def config(world: World) -> str:
    """schemathesis.toml: the seeded identifiers as dictionaries, drawn half of the time
    for the path and body fields that name them."""
    dictionaries = {
        "structures": world.structure_ids,
        "units": world.unit_ids,
        "carers": world.carer_ids,
        "requests": world.request_ids,
        "holds": world.hold_ids,
        "placements": world.placement_ids,
        "targets": world.unit_ids + world.carer_ids,
    }
    bindings = {
        "path.structure_id": "structures",
        "path.organization_id": "structures",
        "path.unit_id": "units",
        "path.location_id": "units",
        "path.carer_id": "carers",
        "path.request_id": "requests",
        "path.hold_id": "holds",
        "path.placement_id": "placements",
        "body.request_id": "requests",
        "body.target.id": "targets",
    }
    lines = ["[cache]", "enabled = false", ""]  # no crash files in the work tree: curl lines
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml_list(values)}", ""]
    lines.append("[parameters]")
    for key, name in bindings.items():
        lines.append(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}')
    return "\n".join(lines) + "\n"


def fuzz(world: World, identity: str) -> tuple[int, str, dict[str, Any]]:
    """One schemathesis run as ``identity``; its exit code, console output and JSON report."""
    headers: list[str] = []
    if identity != ANONYMOUS:
        token = auth.issue_token(identity, **world.scope_for(identity))
        headers = ["-H", f"Authorization: Bearer {token}"]
    with tempfile.TemporaryDirectory(prefix="places-fuzz-") as tmp:
        (Path(tmp) / "schemathesis.toml").write_text(config(world))
        report = Path(tmp) / "report.json"
        run = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli"),
                *("--config-file", str(Path(tmp) / "schemathesis.toml"), "--no-color", "run"),
                f"{world.server.http}/openapi.json",
                *headers,
                *("--checks", ",".join(CHECKS)),
                *("--max-examples", str(MAX_EXAMPLES), "--generation-deterministic"),
                *("--continue-on-failure", "--output-sanitize", "false"),
                *("--request-timeout", "30", "--workers", "1"),
                *("--report", "json", "--report-json-path", str(report)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        data = json.loads(report.read_text()) if report.exists() else {}
    return run.returncode, run.stdout + run.stderr, data


IDENTITIES = [ANONYMOUS, *ROLES]
Run = tuple[int, str, dict[str, Any]]


@pytest.fixture(scope="module")
def runs(world: World, request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Run]]]:
    """Every selected identity's run, started at once, CONCURRENT_RUNS at a time; each test
    waits for its own."""
    selected = [
        item.callspec.params["identity"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(CONCURRENT_RUNS, thread_name_prefix="fuzz") as pool:
        futures = {identity: pool.submit(fuzz, world, identity) for identity in selected}
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("identity", IDENTITIES)
async def test_fuzz_every_answer_is_documented(runs: dict[str, Future[Run]], identity: str) -> None:
    code, output, report = await asyncio.wrap_future(runs[identity])
    failures = output[output.find("= FAILURES =") :] if "= FAILURES =" in output else output
    # Each case with its curl line (cut: a fuzzed URL may run to hundreds of kilobytes).
    failures = "\n".join(line[:500] for line in failures.splitlines())[-20000:]
    assert code == 0, f"schemathesis as {identity}: exit {code}\n{failures}"
    # It ran for real: every operation of the document tested, none skipped on an error.
    operations = report["operations"]
    assert report["complete"] and operations["tested"] == operations["total"] > 30, operations
    assert operations["errored"] == 0 and report["test_cases"]["generated"] > 1000, report


async def test_fuzz_left_no_error_in_the_server_log(
    world: World, runs: dict[str, Future[Run]]
) -> None:
    """Nothing failed out of the fuzzer's sight either (a background task, a response
    already started): the server logged no traceback during the runs."""
    await asyncio.gather(*(asyncio.wrap_future(f) for f in runs.values()))
    logged = world.server.log_path.read_text(errors="replace")
    assert "Traceback" not in logged, logged[-8000:]
