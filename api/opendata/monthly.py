"""Open data of steering (#18): monthly aggregates per competent authority, with statistical
secrecy, as public statistics are published — a CSV and its data dictionary (Frictionless
Table Schema, ``schema.json``). Definitions: docs/domain.md, "Open data of steering".

One line per closed month (the ``months`` before the current one; a month still running is
not published) and authority, plus the nation (``FR``) per month:

* ``children_waiting``: children (child keys) with a request waiting or held at the end of
  the month — a request waits from its creation until its first admission or cancellation;
* ``not_executed_30``: those of them decided 30 days or more before the month's last day;
* ``placements_outside``: children of the authority admitted during the month in another
  authority's territory (``api.stats.flows``);
* ``children_waiting_change``, ``not_executed_30_change``: the change from the month before,
  published only when both months' values are (``api.stats.secrecy.changes``);
* ``execution_delay_median``: median days from decision to admission over the month's
  admissions of the authority's children — published only over 5 admissions or more; on the
  ``FR`` line, over every admission of the month;
* ``execution_delay_p90``: the 90th percentile of the same delays — published only over 10
  admissions or more (over fewer it lies between the two longest, one child's delay);
* ``free_places_<category>``: establishments' free places of each FINESS category at the
  end of the month (the declaration history, ``api.stats.offer``). Assistants familiaux are
  not published (a carer is a person; see ``api.opendata.routes``); places are not children,
  so they are not suppressed.

Secrecy: each count of children is a column of the month's table (authorities and their
national total) suppressed with ``api.stats.secrecy`` — below 5 shown "< 5", secondary
suppression so that no hidden cell is its column's total minus the others. Over time: a
change is published only between two published values (``secrecy.changes``), and no flow
linking two months (entries, exits of the waiting list) is published, so a hidden cell
cannot be recomputed from the previous month either (docs/domain.md, "Secrecy over time").
"""

from datetime import date
from typing import Any

import asyncpg

from api.stats import offer, secrecy
from api.stats.children import CHILD
from matching.vocabulary import FINESS_CATEGORY_LABELS

SUPPRESSED = "< 5"
SUPPRESSED_CHANGE = "s"
"""A change hidden because one of its months' values is (the statistical offices' « s »)."""
MIN_ADMISSIONS = 5
"""A median over fewer admissions is not published (it would tell one child's delay)."""
P90_MIN_ADMISSIONS = 10
"""A 90th percentile over fewer admissions lies between the two longest delays: not published."""
CATEGORIES = tuple(c for c in FINESS_CATEGORY_LABELS if c != "236")
"""Establishments' categories with units (a placement service's places are its carers')."""
COUNTS = ("children_waiting", "not_executed_30", "placements_outside")
CHANGES = ("children_waiting", "not_executed_30")
"""Counts whose change from the month before is published (``<count>_change``): levels of a
waiting list; ``placements_outside`` is already a count of the month."""
CHANGE_FIELDS = tuple(f"{c}_change" for c in CHANGES)

_WAITING = f"""
WITH spans AS MATERIALIZED (
    -- each request once: it waits from its creation to its first admission or cancellation
    SELECT r.authority, {CHILD} AS child, jsonb_array_length(r.children) AS n,
           r.decided_on, r.created_at, x.ended
      FROM placement_requests r
      LEFT JOIN (
            SELECT request_id, min(occurred_at) AS ended FROM request_events
             WHERE event IN ('admitted', 'cancelled') GROUP BY request_id
           ) x ON x.request_id = r.id
     WHERE r.created_at < $2
       AND (x.ended IS NULL OR x.ended >= $3)
),
ends AS (
    SELECT m.e, m.i FROM unnest($1::timestamptz[]) WITH ORDINALITY AS m(e, i)
),
waiting AS (
    SELECT m.i, m.e, s.authority, s.child, max(s.n) AS n, min(s.decided_on) AS decided_on
      FROM ends m
      JOIN spans s ON s.created_at < m.e AND (s.ended IS NULL OR s.ended >= m.e)
     GROUP BY m.i, m.e, s.authority, s.child
)
SELECT i, authority, sum(n)::int AS children_waiting,
       coalesce(sum(n) FILTER (
           WHERE (e AT TIME ZONE 'Europe/Paris')::date - 1 - decided_on >= 30), 0)::int
           AS not_executed_30
  FROM waiting
 GROUP BY i, authority
"""

_ADMISSIONS = f"""
WITH admitted AS (
    SELECT width_bucket(e.occurred_at, $1::timestamptz[]) AS i,
           r.authority AS origin,
           coalesce(s.authority, c.authority) AS host,
           {CHILD} AS child,
           h.places,
           (e.occurred_at AT TIME ZONE 'Europe/Paris')::date - r.decided_on AS days
      FROM request_events e
      JOIN placement_requests r ON r.id = e.request_id
      JOIN holds h ON h.id = e.hold_id
      LEFT JOIN units u ON u.id = h.unit_id
      LEFT JOIN structures s ON s.id = u.structure_id
      LEFT JOIN foster_carers c ON c.id = h.carer_id
     WHERE e.event = 'admitted' AND e.occurred_at >= $2 AND e.occurred_at < $3
),
outside AS (
    SELECT i, origin, sum(places)::int AS children FROM (
        SELECT i, origin, child, max(places) AS places FROM admitted
         WHERE host <> origin GROUP BY 1, 2, 3) o
     GROUP BY 1, 2
)
SELECT a.i, a.origin AS authority,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.days) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY a.days) AS p90,
       count(*)::int AS admissions,
       coalesce(max(o.children), 0) AS placements_outside
  FROM admitted a
  LEFT JOIN outside o ON o.i = a.i AND o.origin = a.origin
 GROUP BY a.i, a.origin
"""


_NATIONAL_DELAYS = """
SELECT width_bucket(e.occurred_at, $1::timestamptz[]) AS i,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d.days) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY d.days) AS p90,
       count(*)::int AS admissions
  FROM request_events e
  JOIN placement_requests r ON r.id = e.request_id
 CROSS JOIN LATERAL (
       SELECT (e.occurred_at AT TIME ZONE 'Europe/Paris')::date - r.decided_on AS days) d
 WHERE e.event = 'admitted' AND e.occurred_at >= $2 AND e.occurred_at < $3
 GROUP BY 1
"""
"""Every admission of each month, whatever its authority: the national delays."""


def _delays(median: float | None, p90: float | None, admissions: int) -> dict[str, Any]:
    """The delays as published: the median over 5 admissions or more, the p90 over 10."""
    return {
        "execution_delay_median": median if admissions >= MIN_ADMISSIONS else None,
        "execution_delay_p90": p90 if admissions >= P90_MIN_ADMISSIONS else None,
    }


async def rows(conn: asyncpg.Connection, today: date, months: int) -> list[dict[str, Any]]:
    """The published lines, month by month (oldest first), authorities in code order then
    ``FR``; counts of children as int or ``None`` (hidden). One month more than published is
    computed first, for the first month's changes."""
    lines = await _rows(conn, today, months + 1)
    per_month = len(lines) // (months + 1)
    return lines[per_month:]


async def _rows(conn: asyncpg.Connection, today: date, months: int) -> list[dict[str, Any]]:
    closed = offer.month_ends(today, months + 1)  # the months before the current one
    labels = [label for label, _ in closed]
    ends = [end for _, end in closed]
    bounds = [offer.month_start(ends[0]), *ends]
    names = dict(await conn.fetch("SELECT code, name FROM authorities ORDER BY code"))
    codes = sorted(names)
    exact: dict[tuple[int, str], dict[str, Any]] = {
        (i, code): {
            "children_waiting": 0,
            "not_executed_30": 0,
            "placements_outside": 0,
            "median": None,
            "p90": None,
            "admissions": 0,
        }
        for i in range(len(ends))
        for code in codes
    }
    for r in await conn.fetch(_WAITING, ends, ends[-1], ends[0]):
        exact[(r["i"] - 1, r["authority"])].update(
            children_waiting=r["children_waiting"], not_executed_30=r["not_executed_30"]
        )
    for r in await conn.fetch(_ADMISSIONS, bounds, bounds[0], bounds[-1]):
        exact[(r["i"] - 1, r["authority"])].update(
            median=r["median"],
            p90=r["p90"],
            admissions=r["admissions"],
            placements_outside=r["placements_outside"],
        )
    national_delays = {
        r["i"] - 1: r for r in await conn.fetch(_NATIONAL_DELAYS, bounds, bounds[0], bounds[-1])
    }
    places = await offer.closed_months(conn, None, ends)
    out: list[dict[str, Any]] = []
    before: dict[str, list[int | None]] = {}
    for i, label in enumerate(labels):
        month = [exact[(i, code)] for code in codes]
        published: dict[str, list[int | None]] = {}
        for field in COUNTS:
            column = secrecy.apply_column([m[field] for m in month])
            total = sum(m[field] for m in month)
            published[field] = [*column, None if secrecy.primary(total) else total]
        changes = {
            field: secrecy.changes(before[field], published[field])
            if before
            else [None] * len(published[field])
            for field in CHANGES
        }
        before = published
        for j, code in enumerate([*codes, "FR"]):
            line: dict[str, Any] = {"month": label, "authority": code}
            line["authority_name"] = names.get(code, "France entière")
            for field in COUNTS:
                line[field] = published[field][j]
            for field in CHANGES:
                line[f"{field}_change"] = changes[field][j]
            if code != "FR":
                m = month[j]
                line.update(_delays(m["median"], m["p90"], m["admissions"]))
                for category in CATEGORIES:
                    line[f"free_places_{category}"] = places.get((code, category, i), (0, 0))[0]
            else:
                n = national_delays.get(i) or {"median": None, "p90": None, "admissions": 0}
                line.update(_delays(n["median"], n["p90"], n["admissions"]))
                for category in CATEGORIES:
                    line[f"free_places_{category}"] = sum(
                        places.get((c, category, i), (0, 0))[0] for c in codes
                    )
            out.append(line)
    return out


def fields() -> list[dict[str, Any]]:
    """The Table Schema's fields, in the CSV's column order, described in French."""
    counts = (
        "enfants ; « < 5 » quand le secret statistique masque la valeur (moins de 5 enfants, "
        "ou masquage secondaire)"
    )
    out: list[dict[str, Any]] = [
        {"name": "month", "type": "yearmonth", "description": "Mois (AAAA-MM, heure de Paris)"},
        {
            "name": "authority",
            "type": "string",
            "description": "Code de l'autorité compétente en protection de l'enfance (69M, 69D,"
            " 20R, 6AE ou le code du département) ; FR pour la France entière",
        },
        {"name": "authority_name", "type": "string", "description": "Nom de l'autorité"},
        {
            "name": "children_waiting",
            "type": "integer",
            "description": "Enfants en attente d'une place à la fin du mois (demande en attente"
            " ou place réservée, non admis) ; " + counts,
        },
        {
            "name": "not_executed_30",
            "type": "integer",
            "description": "Parmi eux, enfants dont la décision de placement date de 30 jours"
            " ou plus au dernier jour du mois (mesures non exécutées) ; " + counts,
        },
        {
            "name": "children_waiting_change",
            "type": "integer",
            "description": "Évolution de children_waiting depuis le mois précédent ; « s »"
            " (secret) quand la valeur de l'un des deux mois est masquée, pour qu'elle ne s'en"
            " déduise pas",
        },
        {
            "name": "not_executed_30_change",
            "type": "integer",
            "description": "Évolution de not_executed_30 depuis le mois précédent ; masquée de"
            " même",
        },
        {
            "name": "placements_outside",
            "type": "integer",
            "description": "Enfants de l'autorité admis pendant le mois dans le territoire"
            " d'une autre autorité ; " + counts,
        },
        {
            "name": "execution_delay_median",
            "type": "number",
            "description": "Délai d'exécution médian (jours de la décision à l'admission) des"
            " admissions du mois des enfants de l'autorité (pour FR : toutes les admissions du"
            " mois) ; vide quand il y en a moins de 5",
        },
        {
            "name": "execution_delay_p90",
            "type": "number",
            "description": "90e centile des mêmes délais (jours) : 9 admissions sur 10 ont été"
            " faites dans ce délai ; vide quand il y en a moins de 10",
        },
    ]
    for category in CATEGORIES:
        out.append(
            {
                "name": f"free_places_{category}",
                "type": "integer",
                "description": "Places libres à la fin du mois dans les établissements de"
                f" catégorie FINESS {category} ({FINESS_CATEGORY_LABELS[category]}), d'après"
                " leurs déclarations ; les assistants familiaux ne sont pas publiés",
            }
        )
    out.append(
        {
            "name": "extracted_on",
            "type": "date",
            "description": "Date d'extraction du fichier (AAAA-MM-JJ, heure de Paris)",
        }
    )
    return out


def table_schema() -> dict[str, Any]:
    """The data dictionary (Frictionless Table Schema) of ``monthly.csv``."""
    return {
        "$schema": "https://specs.frictionlessdata.io/schemas/table-schema.json",
        "title": "Places — indicateurs mensuels de la protection de l'enfance par autorité",
        "description": "Agrégats mensuels par autorité compétente, avec secret statistique : "
        "un nombre d'enfants inférieur à 5 est publié « < 5 », et d'autres cellules sont "
        "masquées pour qu'aucune valeur cachée ne se déduise du total national ni du mois "
        "précédent (évolutions « s » quand l'une des deux valeurs est masquée). Seuls les "
        "mois révolus sont publiés. Données issues du service Places (déclarations des "
        "établissements, demandes de placement des autorités).",
        "fields": fields(),
        "missingValues": ["", SUPPRESSED, SUPPRESSED_CHANGE],
        "primaryKey": ["month", "authority"],
    }
