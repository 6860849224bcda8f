"""How the browser tests launch Chromium: Debian's build, driven by Playwright (no browser
download), with the flags a headless run in a container needs; and how they check a page's
accessibility with axe-core (pinned in ``tests/support/axe/``, installed by
``scripts/setup --dev``). Shared by every module that opens pages, so they all run the same
browser and the same checks the same way."""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from api.db import drop_database
from loadtests.harness import RedisServer, ServiceProcess
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN, TEST_DB

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("PLACES_UI_ARTIFACTS", tempfile.gettempdir()))
"""Where the browser tests leave screenshots and their server's log."""


@dataclass(frozen=True)
class Stack:
    base: str
    dsn: str


@contextmanager
def page_stack(name: str) -> Iterator[Stack]:
    """A real server (``places run``, one worker) with its own database (``<test db>_<name>``)
    and its own redis-server, for one module of browser tests.

    Why not the shared test database and Redis: the in-process app of the other test modules
    runs an outbox relay on the shared database and could hold its lock, and the shared Redis
    database keeps other runs' streams and published-id set; either would swallow the events
    these tests wait for (tests/test_feeds.py isolates itself the same way). The signing keys
    are the session's, so ``issue_token`` works against this server too.

    The server is started first: importing the app is most of its start-up, and the database
    is created meanwhile; a worker that reached its lifespan too early exits and is restarted.
    """
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{TEST_DB}_{name}"
    redis = RedisServer()
    redis.start()
    service = ServiceProcess(
        dsn,
        redis.url,
        log_path=ARTIFACTS / f"{name}-server.log",
        PLACES_JWT_JWKS_URL=None,
        # A ping every 2 s: a test of the live badge sees "Hors ligne" after a missed one
        # without waiting the production period (25 s).
        PLACES_WS_PING_SECONDS="2",
    )
    service.spawn()
    try:
        asyncio.run(create_fixture_database(dsn))
        service.wait_ready(respawn=True)
        yield Stack(service.http, dsn)
    finally:
        service.stop()
        redis.stop()
        asyncio.run(drop_database(dsn))


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright, with the flags above."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@cache
def _axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run scripts/setup --dev (npm ci of axe-core)")
    return AXE.read_text(encoding="utf-8")


async def axe_violations(page: Page, *, exclude: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every rule axe runs by default: WCAG
    2.x A and AA, and best practices), each as ``{id, impact, help, targets}``. The script
    is evaluated through the DevTools protocol, so the page's CSP does not block it and the
    page itself never loads it."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    context = {"exclude": [[s] for s in exclude]} if exclude else None
    result = await page.evaluate(
        """async (context) => {
            const r = await axe.run(context || document, { resultTypes: ["violations"] });
            return r.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 10),
            }));
        }""",
        context,
    )
    return list(result)


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: nothing to scroll sideways)."""
    return int(
        await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )
