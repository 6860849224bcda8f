"""OpenTelemetry tracing, off by default (``PLACES_OTEL_ENABLED``).

When on, each request is a server span made by FastAPI's own instrumentation (the app's
``telemetry`` configuration, W3C ``traceparent`` honoured), and every SQL statement sent
through asyncpg is a child span (``opentelemetry-instrumentation-asyncpg``), exported by
OTLP over HTTP to ``PLACES_OTEL_EXPORTER_ENDPOINT`` (a collector: Tempo, Jaeger, the
OpenTelemetry Collector) or written to standard output (``PLACES_OTEL_EXPORTER=console``,
local debugging). The request's id (``api.logging``) is put on its span, so that a trace
leads to the request's log lines and back.

Why a provider of our own rather than the process-wide one: an app built with its settings
traces by them (tests build several apps in one process). asyncpg's instrumentation patches
the driver for the whole process, so it is applied while a tracing app runs (its lifespan)
and removed after.
"""

import contextlib
import logging
import sys
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from api.settings import Settings

log = logging.getLogger("places.tracing")

OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's telemetry with tracing off: nothing recorded, nothing exported. Its metrics and
logs stay off in any case: /metrics (api.metrics) and the log lines (api.logging) are the
service's own."""


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """The provider the settings ask for, with its exporter; None when tracing is off."""
    if not settings.otel_enabled:
        return None
    resource = Resource.create({"service.name": settings.otel_service_name})
    provider = TracerProvider(resource=resource)
    if settings.otel_exporter == "console":
        # sys.stdout as it is now (the exporter's default is the one of its import).
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_endpoint
        # Without an endpoint, the exporter follows OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
        # OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318/v1/traces.
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def telemetry(provider: TracerProvider | None) -> TelemetryConfig:
    """FastAPI's ``telemetry`` argument: request spans on ``provider``, or nothing."""
    if provider is None:
        return OFF.copy()
    # Spans for requests and WebSocket connections; not one per dependency resolved
    # (operation_spans): a request's SQL statements are what an operator looks for.
    return {
        "tracing": True,
        "metrics": False,
        "logs": False,
        "tracer_provider": provider,
        "operation_spans": False,
    }


@contextlib.contextmanager
def instrumented(app: FastAPI) -> Iterator[None]:
    """For the app's life: asyncpg's statements traced on the app's provider; at the end,
    the instrumentation removed and the spans still buffered exported."""
    provider: TracerProvider | None = getattr(app.state, "tracer_provider", None)
    if provider is None:
        yield
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    log.info("tracing on: %s", app.state.settings.otel_exporter)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        provider.force_flush()
        provider.shutdown()


def tag_request(request_id: str) -> None:
    """Put the request's id on the current span (the request's, when tracing is on)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("places.request_id", request_id)
