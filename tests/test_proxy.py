"""Through the reverse proxy production runs behind (``deploy/haproxy_config.py``): the real
service (``places run``) and HAProxy as processes, with short timeouts so that slow clients
are cut within the test.

What the proxy must do that the service cannot: cut a client that sends its head or its body
slowly (``timeout http-request``), refuse an oversized head before any backend sees it, bound
connections per source, and tell the service who the client is (``X-Forwarded-For``, trusted
from ``PLACES_TRUSTED_PROXIES`` only) — while ordinary requests and WebSockets pass.
"""

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from deploy.haproxy_config import ProxyConfig, render
from loadtests.harness import ROOT, ProxyProcess, ServiceProcess, free_port
from tests.support.factories import bearer

NATIONAL = bearer("national")
SOURCE_CAP = 20


def _config(port: int, backends: list[str]) -> str:
    return render(
        ProxyConfig(
            bind=f"127.0.0.1:{port}",
            backends=backends,
            timeout_http_request="1s",
            timeout_client="3s",
            timeout_http_keep_alive="1s",
            timeout_tunnel="10s",
            timeout_server="10s",
            max_conn_per_source=SOURCE_CAP,
            check_interval="500ms",
            maxconn=1000,  # the test machine's file descriptor limit
        )
    )


def other_address() -> str | None:
    """An address of this machine that is not loopback (a client "from elsewhere")."""
    candidates = []
    with contextlib.suppress(OSError):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the source
            candidates.append(s.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += [
            i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        ]
    return next((a for a in candidates if not a.startswith("127.")), None)


async def _start(database: str, **env: str | None) -> tuple[ServiceProcess, ProxyProcess]:
    service = ServiceProcess(database, PLACES_WS_PING_SECONDS="1", **env)
    await service.astart()
    port = free_port()
    proxy = ProxyProcess(_config(port, [f"127.0.0.1:{service.port}"]), port)
    try:
        await proxy.astart()
    except Exception:
        await service.astop()
        raise
    return service, proxy


@pytest.fixture(scope="module")
async def front(database: str) -> AsyncIterator[ProxyProcess]:
    """The service trusting the proxy (127.0.0.1) for X-Forwarded-For, behind HAProxy."""
    service, proxy = await _start(database, PLACES_TRUSTED_PROXIES="127.0.0.1")
    yield proxy
    await proxy.astop()
    await service.astop()


def exchange(port: int, parts: list[bytes], pause: float, wait: float = 6.0) -> tuple[bytes, float]:
    """Send ``parts`` with ``pause`` seconds between them (stopping when the peer answers or
    closes), then read until the peer closes: what it said, and when it closed."""
    start = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            for i, part in enumerate(parts):
                if i:
                    time.sleep(pause)
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, time.monotonic() - start


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


@pytest.mark.server
@pytest.mark.timeout(120)
async def test_requests_and_websockets_pass_through(front: ProxyProcess) -> None:
    async with httpx.AsyncClient(base_url=front.http) as c:
        r = await c.get("/v1/departments", headers=NATIONAL)
        assert (
            r.status_code == 200 and {"code": "01", "name": "Ain", "region_code": "84"} in r.json()
        )
        assert r.headers["cache-control"] == "no-store"  # the service's own answer
        r = await c.get("/v1/departments")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    async with connect(
        f"{front.ws}/ws/national", additional_headers=NATIONAL, proxy=None, open_timeout=5
    ) as ws:
        # the feed pings every second (PLACES_WS_PING_SECONDS=1): frames flow through. The
        # relay may first publish events an earlier test of the run left in the outbox.
        pings = 0
        async with asyncio.timeout(5):
            while pings < 2:
                frame = orjson.loads(await ws.recv())
                assert frame["type"] == "ping" or "." in frame["type"], frame  # an event
                pings += frame == {"type": "ping"}


@pytest.mark.server
@pytest.mark.timeout(60)
async def test_a_slow_head_is_cut_after_the_timeout(front: ProxyProcess) -> None:
    parts = [b"GET /v1/departments HTTP/1.1\r\n", b"Host: places\r\n"] + [b"X-Drip: 1\r\n"] * 10
    answer, took = await asyncio.to_thread(exchange, front.port, parts, 0.4)
    assert status(answer) == 408, answer[:200]
    assert took < 3.5  # timeout http-request is 1 s; without the proxy it would be 4 s+


@pytest.mark.server
@pytest.mark.timeout(60)
async def test_a_slow_body_is_cut_after_the_timeout(front: ProxyProcess) -> None:
    body = b'{"children": [{"age": 8, "sex": "F"}], "origin_commune": "69123"}'
    head = (
        b"POST /v1/search HTTP/1.1\r\nHost: places\r\nContent-Type: application/json\r\n"
        + f"Authorization: {NATIONAL['Authorization']}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    parts = [head] + [body[i : i + 4] for i in range(0, len(body), 4)]
    answer, took = await asyncio.to_thread(exchange, front.port, parts, 0.4)
    assert status(answer) == 408, answer[:200]
    assert took < 3.5


@pytest.mark.server
@pytest.mark.timeout(60)
async def test_an_oversized_head_is_refused_by_the_proxy(front: ProxyProcess) -> None:
    head = (
        b"GET /v1/departments HTTP/1.1\r\nHost: places\r\nX-Pad: "
        + b"p" * 40000
        + f"\r\nAuthorization: {NATIONAL['Authorization']}\r\n\r\n".encode()
    )
    answer, _ = await asyncio.to_thread(exchange, front.port, [head], 0)
    assert status(answer) in (400, 431), answer[:200]
    async with httpx.AsyncClient(base_url=front.http) as c:
        r = await c.get("/v1/departments", headers={**NATIONAL, "X-Pad": "p" * 8000})
        assert r.status_code == 200  # a head under the limit still passes


@pytest.mark.server
@pytest.mark.timeout(60)
async def test_connections_per_source_are_bounded(front: ProxyProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", front.port)) for _ in range(SOURCE_CAP)]
    try:
        await asyncio.sleep(0.3)
        try:
            answer, _ = await asyncio.to_thread(
                exchange, front.port, [b"GET /readyz HTTP/1.1\r\nHost: places\r\n\r\n"], 0
            )
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # refused at the connection (reset), nothing answered
    finally:
        for sock in held:
            sock.close()
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=front.http) as c:
        assert (await c.get("/readyz")).status_code == 200


async def _dev_token(base: str, source: str | None, **headers: str) -> int:
    transport = httpx.AsyncHTTPTransport(local_address=source) if source else None
    async with httpx.AsyncClient(base_url=base, transport=transport) as c:
        r = await c.post("/ui/dev-token", json={"role": "national"}, headers=headers)
        return r.status_code


@pytest.mark.server
@pytest.mark.timeout(60)
async def test_the_service_sees_the_client_through_x_forwarded_for(front: ProxyProcess) -> None:
    """The dev sign-in answers loopback clients only: through the proxy, a client on another
    address of this machine is refused, because the service reads it from X-Forwarded-For
    (the proxy, its TCP peer, is on loopback); a client's own X-Forwarded-For is dropped."""
    elsewhere = other_address()
    if elsewhere is None:
        pytest.skip("this machine has no address but loopback")
    assert await _dev_token(front.http, None) == 200
    assert await _dev_token(front.http, elsewhere) == 403
    assert await _dev_token(front.http, elsewhere, **{"X-Forwarded-For": "127.0.0.1"}) == 403


@pytest.mark.server
@pytest.mark.timeout(120)
async def test_without_trusted_proxies_the_proxy_is_the_client(database: str) -> None:
    """PLACES_TRUSTED_PROXIES unset: X-Forwarded-For is nobody's word, not even the local
    proxy's — the service sees its TCP peer (uvicorn no longer trusts 127.0.0.1 by itself)."""
    elsewhere = other_address()
    if elsewhere is None:
        pytest.skip("this machine has no address but loopback")
    service, proxy = await _start(database, PLACES_TRUSTED_PROXIES=None)
    try:
        assert await _dev_token(proxy.http, elsewhere) == 200  # seen as the proxy, loopback
        # straight to the service, a spoofed header changes nothing either way
        assert await _dev_token(service.http, None, **{"X-Forwarded-For": "203.0.113.9"}) == 200
    finally:
        await proxy.astop()
        await service.astop()


@pytest.mark.pure
def test_the_shipped_configuration_is_the_rendering_of_the_defaults() -> None:
    shipped = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert shipped == render(ProxyConfig()), (
        "run: python3 -m deploy.haproxy_config > deploy/haproxy.cfg"
    )
    assert "timeout http-request 10s" in shipped and "option forwardfor" in shipped
    assert "uri /readyz" in shipped and "tune.bufsize 17408" in shipped


@pytest.mark.pure
def test_the_configuration_takes_a_list_of_backends_and_refuses_nonsense() -> None:
    text = render(ProxyConfig(backends=["10.0.0.11:8000", "10.0.0.12:8000"]))
    assert "server places1 10.0.0.11:8000" in text and "server places2 10.0.0.12:8000" in text
    for bad in (
        {"backends": []},
        {"backends": ["10.0.0.11"]},
        {"timeout_http_request": "ten"},
        {"bind": "127.0.0.1:80\n    option httpclose"},
    ):
        with pytest.raises(ValueError):
            render(ProxyConfig(**bad))  # type: ignore[arg-type]
