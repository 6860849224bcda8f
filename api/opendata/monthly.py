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
* ``execution_delay_median``: median days from decision to admission over the month's
  admissions of the authority's children — published only over 5 admissions or more;
* ``free_places_<category>``: establishments' free places of each FINESS category at the
  end of the month (the declaration history, ``api.stats.offer``). Assistants familiaux are
  not published (a carer is a person; see ``api.opendata.routes``); places are not children,
  so they are not suppressed.

Secrecy: each count of children is a column of the month's table (authorities and their
national total) suppressed with ``api.stats.secrecy`` — below 5 shown "< 5", secondary
suppression so that no hidden cell is its column's total minus the others. The months are
not linked by any published flow (entries and exits are not published), so a hidden cell
cannot be recomputed from the previous month either.
"""

from datetime import date
from typing import Any

import asyncpg

from api.stats import offer, secrecy
from api.stats.children import CHILD
from matching.vocabulary import FINESS_CATEGORY_LABELS

SUPPRESSED = "< 5"
MIN_ADMISSIONS = 5
"""A median over fewer admissions is not published (it would tell one child's delay)."""
CATEGORIES = tuple(c for c in FINESS_CATEGORY_LABELS if c != "236")
"""Establishments' categories with units (a placement service's places are its carers')."""
COUNTS = ("children_waiting", "not_executed_30", "placements_outside")

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
       count(*)::int AS admissions,
       coalesce(max(o.children), 0) AS placements_outside
  FROM admitted a
  LEFT JOIN outside o ON o.i = a.i AND o.origin = a.origin
 GROUP BY a.i, a.origin
"""


async def rows(conn: asyncpg.Connection, today: date, months: int) -> list[dict[str, Any]]:
    """The published lines, month by month (oldest first), authorities in code order then
    ``FR``; counts of children as int or ``None`` (hidden)."""
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
            admissions=r["admissions"],
            placements_outside=r["placements_outside"],
        )
    places = await offer.closed_months(conn, None, ends)
    out: list[dict[str, Any]] = []
    for i, label in enumerate(labels):
        month = [exact[(i, code)] for code in codes]
        published = {
            field: [v for (v,) in secrecy.apply([[m[field]] for m in month])] for field in COUNTS
        }
        national = {field: sum(m[field] for m in month) for field in COUNTS}
        for j, code in enumerate([*codes, "FR"]):
            line: dict[str, Any] = {"month": label, "authority": code}
            line["authority_name"] = names.get(code, "France entière")
            for field in COUNTS:
                if code == "FR":
                    value = national[field]
                    line[field] = None if secrecy.primary(value) else value
                else:
                    line[field] = published[field][j]
            if code != "FR":
                m = month[j]
                line["execution_delay_median"] = (
                    m["median"] if m["admissions"] >= MIN_ADMISSIONS else None
                )
                for category in CATEGORIES:
                    line[f"free_places_{category}"] = places.get((code, category, i), (0, 0))[0]
            else:
                line["execution_delay_median"] = None
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
            "name": "placements_outside",
            "type": "integer",
            "description": "Enfants de l'autorité admis pendant le mois dans le territoire"
            " d'une autre autorité ; " + counts,
        },
        {
            "name": "execution_delay_median",
            "type": "number",
            "description": "Délai d'exécution médian (jours de la décision à l'admission) des"
            " admissions du mois ; vide quand il y en a moins de 5 (ou pour FR)",
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
        "masquées pour qu'aucune valeur cachée ne se déduise du total national. Seuls les "
        "mois révolus sont publiés. Données issues du service Places (déclarations des "
        "établissements, demandes de placement des autorités).",
        "fields": fields(),
        "missingValues": ["", SUPPRESSED],
        "primaryKey": ["month", "authority"],
    }
