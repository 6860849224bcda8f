"""How the browser tests launch Chromium: Debian's build, driven by Playwright (no browser
download), with the flags a headless run in a container needs; and how they check a page's
accessibility with axe-core (pinned in ``tests/support/axe/``, installed by
``scripts/setup --dev``). Shared by every module that opens pages, so they all run the same
browser and the same checks the same way."""

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
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
