"""Shared FastAPI dependencies: the request's pool and the application's settings.

Code behind a route reaches the configuration through ``AppSettings`` (the ``Settings`` the
app was created with), never through the process-wide ``get_settings()``, so that an app
built by a test with its own settings behaves by them.
"""

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from api.settings import Settings


async def get_pool(request: Request) -> asyncpg.Pool:
    """Async on purpose: a sync dependency would run in the threadpool on every request."""
    return request.app.state.pool


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
