"""Figures about children, not requests (issue #18): per competent authority, and the
national view with statistical secrecy (``api.stats.secrecy``). Glossary and formulas:
docs/domain.md, "Indicators of children".

A **child** is a ``child_key`` within its authority (``api.requests.children``): a child
whose request was cancelled and asked again, or reoriented, is one child. A sibling group
filed under one reference is one key counting its children (the most its requests had).
Days are Paris days (the national calendar); ``window_days`` bounds the flows (admissions,
refusals) to the last days up to today — up to yesterday in the national view, whose window
is one of ``api.stats.service.NATIONAL_WINDOWS``.
"""

from datetime import date
from typing import Any

import asyncpg

from api.codes import REFUSAL_REASONS, WAITING_SITUATIONS
from api.stats import secrecy

CHILD = "coalesce(r.child_key, r.id::text)"
"""A request with no key (written straight to the table) is its own child."""
NOT_EXECUTED_DAYS = (15, 30, 90)

_WAITING = f"""
WITH waiting AS (
    SELECT r.authority, {CHILD} AS child,
           max(jsonb_array_length(r.children)) AS children,
           min(r.decided_on) AS decided_on,
           (array_agg(sit.situation ORDER BY r.created_at DESC, r.id DESC))[1] AS situation
      FROM placement_requests r
      LEFT JOIN LATERAL (
            SELECT situation FROM request_situations
             WHERE request_id = r.id ORDER BY id DESC LIMIT 1
           ) sit ON true
     WHERE r.status IN ('waiting', 'held')
       AND ($1::text IS NULL OR r.authority = $1)
     GROUP BY 1, 2
)
SELECT authority, child, children, decided_on, coalesce(situation, 'inconnu') AS situation
  FROM waiting
"""

_DELAYS = """
SELECT r.authority,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d.days) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY d.days) AS p90,
       count(*) AS admissions
  FROM request_events e
  JOIN placement_requests r ON r.id = e.request_id
 CROSS JOIN LATERAL (
       SELECT ((e.occurred_at AT TIME ZONE 'Europe/Paris')::date - r.decided_on) AS days
       ) d
 WHERE e.event = 'admitted'
   AND e.occurred_at >= (($2::date - $3::int + 1)::timestamp AT TIME ZONE 'Europe/Paris')
   AND e.occurred_at < (($2::date + 1)::timestamp AT TIME ZONE 'Europe/Paris')
   AND ($1::text IS NULL OR r.authority = $1)
 GROUP BY ROLLUP (r.authority)
"""

_REFUSALS = """
SELECT r.authority, e.reason_code, coalesce(s.category, 'carer') AS category, count(*) AS n
  FROM request_events e
  JOIN placement_requests r ON r.id = e.request_id
  JOIN holds h ON h.id = e.hold_id
  LEFT JOIN units u ON u.id = h.unit_id
  LEFT JOIN structures s ON s.id = u.structure_id
 WHERE e.event = 'refused'
   AND e.occurred_at >= (($2::date - $3::int + 1)::timestamp AT TIME ZONE 'Europe/Paris')
   AND e.occurred_at < (($2::date + 1)::timestamp AT TIME ZONE 'Europe/Paris')
   AND ($1::text IS NULL OR r.authority = $1)
 GROUP BY 1, 2, 3
"""


def _empty(authority: str) -> dict[str, Any]:
    return {
        "authority": authority,
        "children_waiting": 0,
        "not_executed": {str(d): 0 for d in NOT_EXECUTED_DAYS},
        "situations": dict.fromkeys(WAITING_SITUATIONS, 0),
        "execution_delay_days": {"median": None, "p90": None, "admissions": 0},
        "refusals_by_reason": dict.fromkeys(REFUSAL_REASONS, 0),
        "refusals_by_category": {},
    }


async def figures(
    conn: asyncpg.Connection,
    authority: str | None,
    today: date,
    window_days: int,
    last_day: date | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Exact figures per authority (every authority, zeros included) and the national
    totals. ``today``: the day the 15/30/90 days are counted to; the window (admissions,
    refusals) is the ``window_days`` Paris days up to ``last_day`` included (by default
    ``today``: up to now; the national view's ends yesterday, ``service.national_last_day``)."""
    last = today if last_day is None else last_day
    codes = [
        r["code"]
        for r in await conn.fetch(
            "SELECT code FROM authorities WHERE $1::text IS NULL OR code = $1 ORDER BY code",
            authority,
        )
    ]
    rows = {code: _empty(code) for code in codes}
    nation = _empty("FR")
    for w in await conn.fetch(_WAITING, authority):
        for target in (rows[w["authority"]], nation):
            target["children_waiting"] += w["children"]
            target["situations"][w["situation"]] += w["children"]
            for d in NOT_EXECUTED_DAYS:
                if (today - w["decided_on"]).days >= d:
                    target["not_executed"][str(d)] += w["children"]
    for d in await conn.fetch(_DELAYS, authority, last, window_days):
        target = nation if d["authority"] is None else rows[d["authority"]]
        target["execution_delay_days"] = {
            "median": d["median"],
            "p90": d["p90"],
            "admissions": d["admissions"],
        }
    for f in await conn.fetch(_REFUSALS, authority, last, window_days):
        for target in (rows[f["authority"]], nation):
            target["refusals_by_reason"][f["reason_code"]] += f["n"]
            by_category = target["refusals_by_category"]
            by_category[f["category"]] = by_category.get(f["category"], 0) + f["n"]
    return rows, nation


def refusal_categories(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The categories refused anywhere in ``rows``, FINESS codes in order, ``carer`` last."""
    seen = {k for row in rows.values() for k in row["refusals_by_category"]}
    return sorted(seen, key=lambda c: (c == "carer", c))


def _refusals(
    rows: dict[str, dict[str, Any]], codes: list[str], items: list[dict[str, Any]]
) -> None:
    """Refusals with secrecy: the tables authorities × reasons and authorities × categories,
    each suppressed as one (every row, column and the row totals — equal in both tables,
    an authority's refusals — taken as known). Every category refused somewhere is a column
    of every authority (0, a count, or hidden), so that a hidden zero looks like any other."""
    categories = refusal_categories(rows)
    for field, keys in (
        ("refusals_by_reason", list(REFUSAL_REASONS)),
        ("refusals_by_category", categories),
    ):
        published = secrecy.apply([[rows[c][field].get(k, 0) for k in keys] for c in codes])
        for item, values in zip(items, published, strict=True):
            item[field] = dict(zip(keys, values, strict=True))
            item["suppressed"].extend(
                f"{field}.{k}" for k, v in zip(keys, values, strict=True) if v is None
            )


MIN_ADMISSIONS_MEDIAN = 5
"""A median over fewer admissions tells one child's delay: not shown nationally."""
MIN_ADMISSIONS_P90 = 10
"""A 90th percentile over fewer lies between the two longest delays: not shown nationally."""


def _delays(rows: dict[str, dict[str, Any]], codes: list[str], items: list[dict[str, Any]]) -> None:
    """Execution delays as the national view shows them: the admissions (children admitted)
    as a column with secrecy, the median only over 5 admissions or more and the 90th
    percentile over 10 or more (as the open data, ``api.opendata.monthly``)."""
    admissions = secrecy.apply_column(
        [rows[c]["execution_delay_days"]["admissions"] for c in codes]
    )
    for code, item, published in zip(codes, items, admissions, strict=True):
        exact = rows[code]["execution_delay_days"]
        n = exact["admissions"]
        item["execution_delay_days"] = {
            "median": exact["median"] if n >= MIN_ADMISSIONS_MEDIAN else None,
            "p90": exact["p90"] if n >= MIN_ADMISSIONS_P90 else None,
            "admissions": published,
        }
        if published is None:
            item["suppressed"].append("execution_delay_days.admissions")


def national_view(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every authority's counts of children with secrecy: the table authorities × waiting
    situations is suppressed as one (its row totals, the children waiting, published), and
    each count column (children waiting, not executed at 15/30/90 days) on its own as a
    column whose national total is published. Refusals by reason and by category likewise,
    each table as one (``_refusals``); the execution delays over too few admissions are
    not shown (``_delays``). ``suppressed`` names the hidden fields."""
    codes = list(rows)
    items = [
        {
            **rows[c],
            "situations": dict(rows[c]["situations"]),
            "not_executed": dict(rows[c]["not_executed"]),
            "suppressed": [],
        }
        for c in codes
    ]
    situations = secrecy.apply(
        [[rows[c]["situations"][s] for s in WAITING_SITUATIONS] for c in codes]
    )
    for item, published in zip(items, situations, strict=True):
        for s, value in zip(WAITING_SITUATIONS, published, strict=True):
            item["situations"][s] = value
            if value is None:
                item["suppressed"].append(f"situations.{s}")
    _refusals(rows, codes, items)
    _delays(rows, codes, items)
    waiting = secrecy.apply([[rows[c]["children_waiting"]] for c in codes])
    for item, (value,) in zip(items, waiting, strict=True):
        item["children_waiting"] = value
        if value is None:
            item["suppressed"].append("children_waiting")
    for d in map(str, NOT_EXECUTED_DAYS):
        column = secrecy.apply([[rows[c]["not_executed"][d]] for c in codes])
        for item, (value,) in zip(items, column, strict=True):
            item["not_executed"][d] = value
            if value is None:
                item["suppressed"].append(f"not_executed.{d}")
    return items
