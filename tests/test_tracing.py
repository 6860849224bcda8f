"""OpenTelemetry tracing (api.tracing): off by default; turned on by the settings, a request
is a server span (its route template, its request id, the caller's trace continued) with a
child span per SQL statement, exported where the settings say."""

import json
import uuid

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api.logging import REQUEST_ID_HEADER
from api.main import create_app
from api.settings import Settings, get_settings
from tests.support.factories import dept

pytestmark = pytest.mark.database

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def traced(settings: Settings) -> bool:
    """Whether asyncpg is instrumented right now (its methods wrapped)."""
    return hasattr(asyncpg.Connection.fetch, "__wrapped__")


async def test_tracing_is_off_by_default(client, app):
    assert Settings.model_fields["otel_enabled"].default is False
    assert app.state.tracer_provider is None
    assert not traced(app.state.settings)
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert "traceparent" not in r.headers


async def test_turned_on_a_request_and_its_sql_are_spans(database, capsys):
    settings = get_settings().model_copy(update={"otel_enabled": True, "otel_exporter": "console"})
    app = create_app(settings)
    memory = InMemorySpanExporter()
    app.state.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    async with app.router.lifespan_context(app):
        assert traced(settings)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
            memory.clear()  # the start-up's own statements
            r = await c.get(
                f"/v1/requests/{uuid.uuid4()}",
                headers={**dept(), REQUEST_ID_HEADER: "trace-test-1", "traceparent": TRACEPARENT},
            )
            assert r.status_code == 404, r.text
    assert not traced(settings)  # the instrumentation leaves with the app

    spans = memory.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(servers) == 1
    server = servers[0]
    assert server.name == "GET /v1/requests/{request_id}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/requests/{request_id}"
    assert server.attributes["http.response.status_code"] == 404
    assert server.attributes["places.request_id"] == "trace-test-1"
    # The caller's trace goes on (W3C traceparent).
    assert format(server.context.trace_id, "032x") == TRACE_ID
    statements = [s for s in spans if s.kind == SpanKind.CLIENT and s.attributes]
    sql = [s for s in statements if "placement_requests" in str(s.attributes.get("db.statement"))]
    assert sql, [s.name for s in spans]
    assert all(s.context.trace_id == server.context.trace_id for s in sql)

    # The console exporter the settings chose wrote the same spans, as JSON objects.
    out, decoder, written = capsys.readouterr().out, json.JSONDecoder(), []
    position = 0
    while (position := out.find("{", position)) >= 0:
        span, position = decoder.raw_decode(out, position)
        written.append(span)
    [request] = [w for w in written if w["name"] == "GET /v1/requests/{request_id}"]
    assert request["context"]["trace_id"] == f"0x{TRACE_ID}"
