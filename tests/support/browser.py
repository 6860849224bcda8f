"""How the browser tests launch Chromium: Debian's build, driven by Playwright (no browser
download), with the flags a headless run in a container needs. Shared by every module that
opens pages, so they all run the same browser the same way."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
