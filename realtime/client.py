"""``places feed``: watch a live feed from a terminal, without a browser: an authority's
(``/ws/authorities/{code}``), a department's (``/ws/departments/{code}``, the alias of its
only authority's) or the national one.

Prints one line per event as it comes (``--json``: the raw message, for ``jq``). After a
disconnect (server restart, network, 1013 "too slow") it reconnects with the id of the last
event it printed, so nothing is missed or printed twice; after 4410 (that id is older than
what the server keeps) it says so and goes on live. Refusals (4400/4401/4403/4404) end it.
"""

import asyncio
import json
import sys
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

FATAL = {4400, 4401, 4403, 4404}
SUBPROTOCOL = "places.v1"
BEARER_PROTOCOL = "places.bearer."
"""The feed's subprotocols (``api.feeds.routes``): the client offers both, the server
selects ``places.v1``."""
GONE = 4410


def feed_url(
    base_url: str,
    department: str | None,
    last_event_id: str | None,
    authority: str | None = None,
) -> str:
    """``http(s)://host:port`` (or ``ws(s)://``) → the feed's WebSocket URL: the authority's,
    else the department's, else the national one."""
    parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if authority:
        feed = f"/ws/authorities/{authority}"
    elif department:
        feed = f"/ws/departments/{department}"
    else:
        feed = "/ws/national"
    path = parts.path.rstrip("/") + feed
    query = urlencode({"last_event_id": last_event_id}) if last_event_id else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def format_event(event: dict[str, Any]) -> str:
    """One line: id, time, authority (the department for an entry without one), type, data."""
    data = json.dumps(event.get("data", {}), ensure_ascii=False, separators=(",", ":"))
    where = event.get("authority") or event["department"]
    return f"{event['id']}  {event['occurred_at']}  {where:>3}  {event['type']}  {data}"


async def watch(
    base_url: str,
    token: str,
    department: str | None = None,
    last_event_id: str | None = None,
    count: int | None = None,
    json_lines: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    max_backoff: float = 10.0,
    authority: str | None = None,
) -> int:
    """Print events until ``count`` of them (forever when None); returns an exit status."""
    printed = 0
    backoff = 0.5
    # The token travels as a subprotocol, as the pages send it: never in the URL.
    protocols = [Subprotocol(SUBPROTOCOL), Subprotocol(BEARER_PROTOCOL + token)]
    while True:
        url = feed_url(base_url, department, last_event_id, authority)
        try:
            async with connect(url, subprotocols=protocols, proxy=None, open_timeout=10) as ws:
                print(f"connected: {url}", file=err, flush=True)
                async for raw in ws:
                    event = json.loads(raw)
                    if event.get("type") == "ping":
                        continue
                    print(raw if json_lines else format_event(event), file=out, flush=True)
                    last_event_id = event["id"]
                    printed += 1
                    backoff = 0.5
                    if count is not None and printed >= count:
                        return 0
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            if code in FATAL:
                print(f"refused ({code}): {reason}", file=err, flush=True)
                return 2
            if code == GONE:
                print(
                    f"history after {last_event_id} is gone ({reason}); reload your snapshot."
                    " Going on live.",
                    file=err,
                    flush=True,
                )
                last_event_id = None
                continue
            print(f"disconnected ({code}): {reason or 'no reason'}; resuming", file=err)
        except InvalidStatus as exc:
            print(f"refused by the server: HTTP {exc.response.status_code}", file=err)
            return 2
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            print(f"cannot reach {url}: {exc}; retrying in {backoff:.1f} s", file=err)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


def run(
    *,
    base_url: str,
    token: str,
    department: str | None,
    last_event_id: str | None,
    count: int | None,
    json_lines: bool,
    authority: str | None = None,
) -> int:
    """Entry point of ``places feed`` once its options are resolved: the authority's feed,
    the department's, or the national one when both are None. The caller (``api.cli``) picks
    the server and the token from its settings; the client reads no configuration."""
    try:
        return asyncio.run(
            watch(
                base_url,
                token,
                department,
                last_event_id,
                count=count,
                json_lines=json_lines,
                authority=authority,
            )
        )
    except KeyboardInterrupt:
        return 130
