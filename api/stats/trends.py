"""Trends of steering (#18): the monthly indicators of the open data (``api.opendata.monthly``:
closed months, secrecy applied per month and over time) as JSON, for the dashboards' 12-month
trends. Glossary: docs/domain.md, "Open data of steering" and "Secrecy over time".

Why a cache: a closed month's lines never change once it is over — requests, events and
declarations are written with the time of the write, so nothing new lands in a past month.
The lines are computed once per day and span (a cold call reads the whole history: seconds
on the national dataset) and kept by the process, under a key that moves only when the past
does: the tables' storage (renewed by a reseed) and the number of requests and of events
dated before the current month (moved only by rows written by hand with past dates, as the
tests do — never by the day's work, which would otherwise recompute on every event).
"""

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from api.opendata import monthly

PARIS = ZoneInfo("Europe/Paris")
_GENERATION = """
SELECT ARRAY[(SELECT relfilenode FROM pg_class WHERE oid = 'request_events'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'placement_requests'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'capacity_declarations'::regclass),
             (SELECT count(*) FROM request_events WHERE occurred_at < $1),
             (SELECT count(*) FROM placement_requests WHERE created_at < $1)]
"""
"""$1: the first instant of the current month (Paris): what is before it is the past."""
_CACHE: dict[tuple[date, int, tuple[int, ...]], list[dict[str, Any]]] = {}
_CACHE_SIZE = 32


async def lines(conn: asyncpg.Connection, today: date, months: int) -> list[dict[str, Any]]:
    """The open data's lines of the ``months`` closed months (every authority and FR)."""
    month_start = datetime.combine(today.replace(day=1), time(), PARIS)
    key = (today, months, tuple(await conn.fetchval(_GENERATION, month_start)))
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
