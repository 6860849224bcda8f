"""Flows of children between territories (issue #18): who places where, as an origin → host
matrix of children admitted over a window. Glossary and formulas: docs/domain.md,
"Placements outside the authority".

* **origin**: the authority of the request (``placement_requests.authority``: the authority
  in charge of the child, the one that files the request);
* **host**: the authority of the *territory* the child is placed in — for a unit, its
  establishment's authority (``structures.authority``, from the establishment's commune);
  for an assistant familial, the authority of their home's commune
  (``foster_carers.authority``, the one that issued the agrément, CASF L421-3). Not the
  employing authority: a carer employed by the Rhône who lives in the Métropole de Lyon
  hosts the child in the Métropole, which is what "placed outside the territory" means for
  visits, school and the judge (Code civil art. 375-7); who pays is another question.

A cell counts **children**: for each child key (``api.stats.children.CHILD``) admitted in
the window by that origin in that host, the most places its admissions took (a sibling group
counts each child, once; a child admitted twice in the same host counts once). Placements
inside the authority (origin = host) are counted apart (``inside``), not in the matrix.

National view: the matrix with its margins is one table for statistical secrecy
(``api.stats.secrecy``): margins are cells of the extended table, so that a line's published
total (cells = margin) never reveals a hidden cell either.
"""

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from api.stats import secrecy
from api.stats.children import CHILD
from geo.referential import load_authorities

PARIS = ZoneInfo("Europe/Paris")

_PLACED = f"""
SELECT r.authority AS origin,
       coalesce(s.authority, c.authority) AS host,
       {CHILD} AS child,
       max(h.places)::int AS children
  FROM request_events e
  JOIN placement_requests r ON r.id = e.request_id
  JOIN holds h ON h.id = e.hold_id
  LEFT JOIN units u ON u.id = h.unit_id
  LEFT JOIN structures s ON s.id = u.structure_id
  LEFT JOIN foster_carers c ON c.id = h.carer_id
 WHERE e.event = 'admitted'
   AND e.occurred_at >= $1
   AND e.occurred_at < $2
   AND ($3::text IS NULL OR r.authority = $3 OR coalesce(s.authority, c.authority) = $3)
 GROUP BY 1, 2, 3
"""
"""Each child admitted in [$1, $2) by origin and host, with the most places it took."""

_GENERATION = """
SELECT ARRAY[(SELECT relfilenode FROM pg_class WHERE oid = 'request_events'::regclass),
             (SELECT relfilenode FROM pg_class WHERE oid = 'placement_requests'::regclass)]
"""
Placed = dict[tuple[str, str, str], int]
_CACHE: dict[tuple[date, int, tuple[int, ...]], Placed] = {}
_CACHE_SIZE = 64


def window_bounds(last_day: date, window_days: int) -> tuple[datetime, datetime]:
    """The window as instants: from the start of the Paris day ``window_days − 1`` days
    before ``last_day`` to the end of ``last_day`` — sargable on ``occurred_at`` (its
    index)."""
    start = date.fromordinal(last_day.toordinal() - window_days + 1)
    end = date.fromordinal(last_day.toordinal() + 1)
    return (
        datetime.combine(start, time(), PARIS),
        datetime.combine(end, time(), PARIS),
    )


async def _placed(
    conn: asyncpg.Connection, start: datetime, end: datetime, authority: str | None
) -> Placed:
    rows = await conn.fetch(_PLACED, start, end, authority)
    return {(r["origin"], r["host"], r["child"]): r["children"] for r in rows}


async def cells(
    conn: asyncpg.Connection, last_day: date, window_days: int, authority: str | None = None
) -> dict[tuple[str, str], int]:
    """Children admitted in the window (the ``window_days`` Paris days up to ``last_day``
    included) per (origin, host); with ``authority``, only its row and its column.

    The national matrix (its window ends yesterday: ``service.national_last_day``) reads
    the days before ``last_day`` once per day and process (admissions are append-only and
    dated when written, so those days do not change; the key also holds the tables'
    storage, renewed by a reseed) and ``last_day``'s admissions on each call — one day,
    cheap, and what a test dating an admission back to yesterday sees at once; the two are
    merged child by child, so a child admitted on both sides counts once."""
    start, end = window_bounds(last_day, window_days)
    if authority is not None:
        placed = await _placed(conn, start, end, authority)
    else:
        midnight = datetime.combine(last_day, time(), PARIS)
        key = (last_day, window_days, tuple(await conn.fetchval(_GENERATION)))
        past = _CACHE.get(key)
        if past is None:
            past = await _placed(conn, start, midnight, None)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.clear()
            _CACHE[key] = past
        placed = dict(past)
        for child, n in (await _placed(conn, midnight, end, None)).items():
            placed[child] = max(n, placed.get(child, 0))
    out: dict[tuple[str, str], int] = {}
    for (origin, host, _), n in placed.items():
        out[(origin, host)] = out.get((origin, host), 0) + n
    return out


def authority_codes() -> list[str]:
    """Every competent authority in the referential's order (rows and columns)."""
    return list(load_authorities())


def national_view(flows: dict[tuple[str, str], int], codes: list[str]) -> dict[str, Any]:
    """The matrix with secrecy. ``cells``: the non-zero or hidden cells outside the diagonal
    (``children`` null when hidden, "< 5"); ``origins``: per authority, ``outside`` (its
    children placed in another authority: its row's margin) and ``inside`` (placed in its own
    territory); ``hosts``: ``from_outside`` (children of other authorities it hosts: its
    column's margin); ``total``: every child placed outside its authority.

    One extended table — off-diagonal cells, row margins, column margins, grand total — goes
    through secrecy, with the cells known without it as structural (never hidden, never a
    complement): the diagonal (nobody places "outside" in itself) and the cells of a line
    whose total is 0 — a zero hidden there would be known anyway, and would give away the
    cells it was meant to protect. ``inside`` is a column of its own with its national
    total."""
    index = {code: i for i, code in enumerate(codes)}
    n = len(codes)
    table = [[0] * (n + 1) for _ in range(n + 1)]
    inside = [0] * n
    for (origin, host), value in flows.items():
        if origin == host:
            inside[index[origin]] += value
        else:
            table[index[origin]][index[host]] += value
    for i in range(n):
        table[i][n] = sum(table[i][:n])
    for j in range(n + 1):
        table[n][j] = sum(table[i][j] for i in range(n))
    # Known without the table, so never hidden nor a complement: the diagonal, and every
    # cell of a line whose total is 0 (all its cells are 0: counts are never negative).
    empty_rows = {i for i in range(n + 1) if table[i][n] == 0}
    empty_cols = {j for j in range(n + 1) if table[n][j] == 0}
    structural = [
        [(i == j and i < n) or i in empty_rows or j in empty_cols for j in range(n + 1)]
        for i in range(n + 1)
    ]
    published = secrecy.apply(table, structural)
    inside_published = [row[0] for row in secrecy.apply([[v] for v in inside])]
    return {
        "cells": [
            {"origin": codes[i], "host": codes[j], "children": published[i][j]}
            for i in range(n)
            for j in range(n)
            if i != j and (table[i][j] or published[i][j] is None)
        ],
        "origins": [
            {"authority": codes[i], "outside": published[i][n], "inside": inside_published[i]}
            for i in range(n)
        ],
        "hosts": [{"authority": codes[j], "from_outside": published[n][j]} for j in range(n)],
        "total": {"outside": published[n][n], "inside": secrecy.apply([[sum(inside)]])[0][0]},
    }


def authority_view(flows: dict[tuple[str, str], int], code: str) -> dict[str, Any]:
    """The authority's own row (its children, by host) and column (the children it hosts, by
    origin), exact: its own placements and the children living in its territory."""
    outside = sum(v for (o, h), v in flows.items() if o == code and h != code)
    from_outside = sum(v for (o, h), v in flows.items() if h == code and o != code)
    inside = flows.get((code, code), 0)
    return {
        "cells": [
            {"origin": o, "host": h, "children": v}
            for (o, h), v in sorted(flows.items())
            if o != h and code in (o, h)
        ],
        "origins": [{"authority": code, "outside": outside, "inside": inside}],
        "hosts": [{"authority": code, "from_outside": from_outside}],
        "total": {"outside": outside, "inside": inside},
    }
