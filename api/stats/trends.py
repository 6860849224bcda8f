"""Trends of steering (#18): the monthly indicators of the open data (``api.opendata.monthly``:
closed months, secrecy applied per month and over time) as JSON, for the dashboards' 12-month
trends. Glossary: docs/domain.md, "Open data of steering" and "Secrecy over time".

Why a cache: a closed month's lines never change once it is over — requests, events and
declarations are written with the time of the write, so nothing new lands in a past month.
The lines are computed once per day, span and state of the tables (their storage, renewed by
a reseed; the last event's id and the number of requests, moved by rows written by hand with
past dates, as the tests do) and kept by the process.
"""

from datetime import date
from typing import Any

import asyncpg

from api.opendata import monthly

_GENERATION = """
SELECT ARRAY[(SELECT relfilenode FROM pg_class WHERE oid = 'request_events'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'placement_requests'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'capacity_declarations'::regclass),
             coalesce((SELECT max(id) FROM request_events), 0),
             (SELECT count(*) FROM placement_requests)]
"""
_CACHE: dict[tuple[date, int, tuple[int, ...]], list[dict[str, Any]]] = {}
_CACHE_SIZE = 32


async def lines(conn: asyncpg.Connection, today: date, months: int) -> list[dict[str, Any]]:
    """The open data's lines of the ``months`` closed months (every authority and FR)."""
    key = (today, months, tuple(await conn.fetchval(_GENERATION)))
    cached = _CACHE.get(key)
    if cached is None:
        cached = await monthly.rows(conn, today, months)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = cached
    return cached


def as_trend(line: dict[str, Any]) -> dict[str, Any]:
    """A line of the open data as the API gives it: the free places as one mapping."""
    prefix = "free_places_"
    out = {k: v for k, v in line.items() if not k.startswith(prefix) and k != "extracted_on"}
    out["free_places"] = {k[len(prefix) :]: v for k, v in line.items() if k.startswith(prefix)}
    return out
