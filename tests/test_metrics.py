"""/metrics (api.metrics): the operator only; per-route-template latencies; the domain's
counters; the deployment's figures read at scrape time (outbox, relay, standby); and, with
``places run`` and two workers, every worker's counts added up whichever worker answers."""

import asyncio
import math
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from api.logging import REQUEST_ID_HEADER
from api.main import create_app
from api.metrics import _forget_dead_workers, outbox_figures
from api.settings import Settings, get_settings
from loadtests.harness import ServiceProcess
from tests.support.env import TEST_DSN
from tests.support.factories import bearer, dept, hold, new_request, new_unit

OPERATOR = bearer("operator")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """A sample's value (0 when the series does not exist yet: counters start there)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    r = await client.get("/metrics", headers=OPERATOR)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (bearer("department", authority="69M"), 403),
        (bearer("national"), 403),
        (bearer("structure", finess="690000001"), 403),
    ],
)
async def test_only_the_operator_reads_the_metrics(client, headers, status):
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert "places_http_requests_total" not in r.text


async def test_latency_is_per_route_template_not_per_path(client):
    before = await scrape(client)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for request_id in ids:
        # Unknown requests: 404, each a different raw path of one template.
        r = await client.get(f"/v1/requests/{request_id}", headers=dept())
        assert r.status_code == 404, r.text
    await client.get("/no/such/page")
    text = await scrape(client)
    template = "/v1/requests/{request_id}"
    count = "places_http_request_duration_seconds_count"
    assert value(text, count, method="GET", route=template) - value(
        before, count, method="GET", route=template
    ) == pytest.approx(3)
    assert value(
        text, "places_http_requests_total", method="GET", route=template, status="404"
    ) - value(
        before, "places_http_requests_total", method="GET", route=template, status="404"
    ) == pytest.approx(3)
    assert value(text, count, method="GET", route="unmatched") >= 1
    for request_id in ids:
        assert request_id not in text
    # The histogram has the buckets an SLO on 200 ms needs.
    assert (
        "places_http_request_duration_seconds_bucket",
        frozenset({"method": "GET", "route": template, "le": "0.2"}.items()),
    ) in samples(text)


async def test_declarations_holds_and_searches_are_counted(client, pool):
    before = await scrape(client)
    unit = await new_unit(client, pool)  # one declaration, through the API
    request = await new_request(client)
    r = await hold(client, request, "unit", unit["id"])
    assert r.status_code == 201, r.text
    refused = await hold(client, request, "unit", str(uuid.uuid4()))  # unknown unit
    assert refused.status_code >= 400
    search = {
        "children": [{"age": 8, "sex": "F"}],
        "origin": {"commune": "69123"},
        "care_mode": "durable",
        "limit": 5,
    }
    r = await client.post("/v1/search", json=search, headers=dept())
    assert r.status_code == 200, r.text
    text = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("places_declarations_total", kind="unit") == 1
    assert delta("places_holds_total", action="placed") == 1  # the refusal is not counted
    assert delta("places_searches_total") == 1


async def test_pool_feed_and_deployment_gauges_are_exposed(client):
    text = await scrape(client)
    assert value(text, "places_workers") == 1
    assert value(text, "places_db_pool_max") == get_settings().db_pool_max
    assert value(text, "places_db_pool_connections") >= get_settings().db_pool_min
    assert 0 <= value(text, "places_db_pool_in_use") <= value(text, "places_db_pool_connections")
    assert value(text, "places_feed_queue_capacity") == get_settings().ws_queue_size
    assert value(text, "places_feed_clients") >= 0
    assert value(text, "places_dependency_up", dependency="postgres") == 1
    assert value(text, "places_dependency_up", dependency="redis") == 1
    assert value(text, "places_outbox_backlog_events") >= 0
    # No read URL configured: the standby's lag is NaN, and its dependency is not reported.
    assert math.isnan(value(text, "places_standby_lag_seconds"))
    assert ("places_dependency_up", frozenset({("dependency", "standby")})) not in samples(text)


async def test_outbox_backlog_and_its_oldest_event_age(pool):
    """In a transaction the relay cannot see: an event committed "ten minutes ago" waits."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            before = await outbox_figures(conn)
            await conn.execute(
                """
                INSERT INTO outbox_events (type, department, authority, occurred_at, data,
                                           national_data)
                VALUES ('test.metrics', '69', '69M', now() - interval '10 minutes', '{}', '{}')
                """
            )
            after = await outbox_figures(conn)
        finally:
            await tx.rollback()
    assert after["backlog"] == before["backlog"] + 1
    assert 600 <= after["oldest_age"] < 700


async def test_relay_lag_and_last_publication_follow_the_relay(client, pool):
    request = await new_request(client)  # writes an outbox event the relay publishes
    assert request["id"]
    for _ in range(50):
        async with pool.acquire() as conn:
            figures = await outbox_figures(conn)
        if figures["backlog"] == 0:
            break
        await asyncio.sleep(0.1)
    text = await scrape(client)
    assert value(text, "places_outbox_backlog_events") == 0
    assert value(text, "places_outbox_oldest_unpublished_age_seconds") == 0
    assert 0 <= value(text, "places_relay_lag_seconds") < 30
    assert abs(time.time() - value(text, "places_outbox_last_published_timestamp_seconds")) < 60


class ReadSettings(Settings):
    """The read standby's setting (``PLACES_DATABASE_READ_URL``, the cluster's deliverable):
    declared here so that the test stands whether or not ``Settings`` has it yet."""

    database_read_url: str | None = None


async def test_standby_lag_is_reported_when_a_read_url_is_set(database):
    # The primary itself as the "standby": not in recovery, so no lag.
    settings = ReadSettings(database_read_url=TEST_DSN)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
            text = await scrape(c)
    assert value(text, "places_standby_lag_seconds") == 0
    assert value(text, "places_dependency_up", dependency="standby") == 1

    unreachable = ReadSettings(database_read_url="postgresql://places_app@127.0.0.1:1/none")
    app = create_app(unreachable)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
            text = await scrape(c)
    assert math.isnan(value(text, "places_standby_lag_seconds"))
    assert value(text, "places_dependency_up", dependency="standby") == 0


@pytest.mark.server
async def test_two_workers_add_up_whichever_answers(database, tmp_path):
    """``places run --workers 2``: requests spread over both workers (new connections), yet
    every scrape counts all of them: the multiprocess files are added up."""
    server = ServiceProcess(
        TEST_DSN, workers=2, log_path=tmp_path / "server.log", PLACES_LOG_JSON="true"
    )
    await server.astart()
    try:
        n = 40
        for _ in range(n):
            async with httpx.AsyncClient(base_url=server.http) as c:
                r = await c.get("/healthz", headers={REQUEST_ID_HEADER: "probe-1"})
                assert r.status_code == 200
                assert r.headers[REQUEST_ID_HEADER] == "probe-1"
        counts = []
        workers = []
        for _ in range(6):
            async with httpx.AsyncClient(base_url=server.http) as c:
                r = await c.get("/metrics", headers=OPERATOR)
                assert r.status_code == 200, r.text
                counts.append(
                    value(
                        r.text,
                        "places_http_request_duration_seconds_count",
                        method="GET",
                        route="/healthz",
                    )
                )
                workers.append(value(r.text, "places_workers"))
        assert counts == [n] * len(counts)
        assert workers == [2] * len(workers)
    finally:
        await server.astop()
    log = server.output()
    # uvicorn's own lines go through the service's JSON formatter too.
    assert re.search(r'\{"ts": "[^"]+", "level": "info", "logger": "uvicorn\.error"', log), log


WORKER = """
from api.metrics import DECLARATIONS, FEED_CLIENTS
DECLARATIONS.labels(kind="unit").inc(3)
FEED_CLIENTS.set(7)
"""


@pytest.mark.pure
def test_a_dead_worker_s_gauges_go_but_its_counts_stay(tmp_path):
    """Two "workers" write their files and die without stopping (kill -9): the scrape adds
    up their counters, and drops their live gauges once it sees the processes gone."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, timeout=60)

    def exposition() -> str:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        return generate_latest(registry).decode()

    before = exposition()
    assert value(before, "places_declarations_total", kind="unit") == 6
    assert value(before, "places_feed_clients") == 14  # stale: both processes are gone
    _forget_dead_workers(str(tmp_path))
    after = exposition()
    assert value(after, "places_declarations_total", kind="unit") == 6
    assert ("places_feed_clients", frozenset()) not in samples(after)
