"""Request ids (api.logging): every response carries ``X-Request-Id`` — the proxy's when it
is sane, else a new one — and every log line written while the request is handled carries
it, in the JSON and the plain format alike, a 500's included."""

import io
import json
import logging
import re

import httpx
import pytest

from api.logging import REQUEST_ID_HEADER, configure
from api.main import create_app
from api.settings import get_settings

pytestmark = pytest.mark.database  # the app's lifespan opens the database pool

log = logging.getLogger("places.test")


def configure_into(buffer: io.StringIO, *, json_lines: bool) -> None:
    """The service's logging (``configure``), its one handler writing into ``buffer``."""
    configure(json_lines)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


@pytest.fixture
async def logged(database):
    """An app with two extra routes (one logs, one fails), the service's logging configured
    to write into a buffer; the root logger's handlers restored after."""
    app = create_app(get_settings())

    @app.get("/test/logs")
    async def logs() -> dict[str, str]:
        log.info("handling the test request")
        return {"ok": "yes"}

    @app.get("/test/fails")
    async def fails() -> None:
        raise RuntimeError("boom")

    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
            yield c, buffer
    root.handlers[:], root.level = saved


async def test_a_sane_incoming_id_is_kept_and_logged(logged):
    client, buffer = logged
    configure_into(buffer, json_lines=True)
    r = await client.get("/test/logs", headers={REQUEST_ID_HEADER: "haproxy-7f3a:42"})
    assert r.status_code == 200
    assert r.headers[REQUEST_ID_HEADER] == "haproxy-7f3a:42"
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    mine = [e for e in lines if e["msg"] == "handling the test request"]
    assert len(mine) == 1
    assert mine[0]["request_id"] == "haproxy-7f3a:42"


@pytest.mark.parametrize(
    "incoming",
    [None, b"", b"two words", b"x" * 129, b"line\nbreak", b'"quoted"', b"-dash", "é".encode()],
)
async def test_a_missing_or_insane_id_is_replaced_by_a_new_one(logged, incoming):
    client, _ = logged
    headers = {} if incoming is None else {REQUEST_ID_HEADER: incoming}
    r = await client.get("/healthz", headers=headers)
    assert r.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers[REQUEST_ID_HEADER])
    again = await client.get("/healthz", headers=headers)
    assert again.headers[REQUEST_ID_HEADER] != r.headers[REQUEST_ID_HEADER]


async def test_a_500_carries_the_id_in_its_response_and_its_log_line(logged):
    client, buffer = logged
    configure_into(buffer, json_lines=False)
    r = await client.get("/test/fails")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    rid = r.headers[REQUEST_ID_HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    errors = [line for line in buffer.getvalue().splitlines() if "unhandled error" in line]
    assert len(errors) == 1
    assert f"[{rid}]" in errors[0]


async def test_lines_outside_a_request_have_no_id(logged):
    _, buffer = logged
    configure_into(buffer, json_lines=True)
    log.info("between requests")
    entry = json.loads(buffer.getvalue().splitlines()[-1])
    assert entry["msg"] == "between requests"
    assert "request_id" not in entry
