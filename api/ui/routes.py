"""Mount the pages and everything they read, in one call from ``create_app``.

The routes themselves live by what they serve: ``api.ui.pages`` (HTML), ``api.ui.signin``
(dev sign-in), ``api.ui.me`` (``/ui/api/moi``), ``api.ui.geo`` (communes for the maps); the
statistics the dashboards read are ``api.stats``'s.
"""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.stats.routes import router as stats_router
from api.ui import assets, geo, me, pages, signin
from api.ui.assets import STATIC


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the statistics they read (one call from
    ``create_app``, so that main.py keeps a single line for all of it)."""
    app.include_router(stats_router)
    for module in (pages, signin, me, geo, assets):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
