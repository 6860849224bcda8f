"""Shared FastAPI dependencies."""

from typing import Annotated

import asyncpg
from fastapi import Depends, Request


async def get_pool(request: Request) -> asyncpg.Pool:
    """Async on purpose: a sync dependency would run in the threadpool on every request."""
    return request.app.state.pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
