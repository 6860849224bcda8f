"""Synthetic national dataset: establishments, units, foster carers and their capacity.

Why synthetic: real capacity data does not exist nationally (that is the point of the
service), and carers' homes are personal data. The dataset must nevertheless look like
France so that searches, matching, dashboards and load tests behave as they will in
production: about 2,500 child-protection establishments (MECS the most common, one foyer
de l'enfance per department, many small lieux de vie), about 38,000 assistants familiaux,
both spread like the population, an overall occupancy around 95 % with strong differences
of tension between departments, and declarations of uneven freshness (some stale).

Everything is drawn from ``random.Random`` streams derived from one integer seed, over the
referential read back from the database in a fixed order, so the same seed gives the same
rows, ids included (UUIDs are built from the stream, never ``uuid4()``). Timestamps are
offsets from ``now`` (a parameter), so they are reproducible too when ``now`` is given.

Rows are bulk-loaded with COPY in one transaction; structures and carers go through
temporary tables with plain ``lat``/``lon`` columns because asyncpg has no binary codec for
PostGIS ``geography``. The seed refuses to run on a database that already has an offer
unless ``replace=True``, which truncates the offer tables first.

Where things are: this module reads the referential, runs the generators, loads and
reports; ``seed.structures`` draws the establishments, their units (from the table of
``seed.unit_rules``) and capacity — none for a service de placement familial (236), whose
places are its carers'; ``seed.carers`` the assistants familiaux and their employer; ``seed.draws``
holds the drawing helpers both use and ``seed.dataset`` the rows being built.

Run it on its own with ``python -m seed.national --dsn … --seed N --replace``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from api import precision
from api.requests.children import service_secret
from api.settings import get_settings
from seed.carers import NATIONAL_CARERS, generate_carers
from seed.dataset import STALE_AFTER_DAYS, Commune, Department, Generated
from seed.history import offer_history, seed_history
from seed.reference import load_reference
from seed.structures import CATEGORIES, Serials, draw_associations, generate_structures

#: Emptied by ``replace=True``, analysed after the load.
OFFER_TABLES = (
    "structures",
    "units",
    "foster_carers",
    "carer_declarations",
    "capacity_declarations",
    "capacity_snapshots",
)
#: The workflow's history (``seed.history``): emptied with the offer by ``replace=True`` (its
#: holds point at the offer), analysed after the load.
HISTORY_TABLES = ("placement_requests", "holds", "request_events", "request_situations")


class SeedError(RuntimeError):
    """The seed cannot run on this database as asked (offer already present, no referential)."""


@dataclass
class Summary:
    """What a seed run produced: counts, places, occupancy, freshness and tension."""

    seed: int
    scale: float
    structures_by_category: dict[str, int]
    units: int
    units_with_profiles: int
    carers: int
    carers_active: int
    places_installed: int
    places_occupied: int
    places_reserved: int
    places_closed: int
    places_available: int
    carer_places: int
    carer_places_occupied: int
    carer_places_available: int
    snapshots: int
    declarations: int
    carer_declarations: int
    stale_declarations: int
    very_stale_declarations: int
    highest_tension: list[tuple[str, str, float]]
    lowest_tension: list[tuple[str, str, float]]
    #: Carers employed by a placement service (FINESS 236), and the agrément places of the
    #: active ones: that is the services' whole capacity (they have no unit).
    service_carers: int = 0
    service_carer_places: int = 0
    #: The 12 months of workflow history (``seed.history``).
    requests: int = 0
    admissions: int = 0
    outside_admissions: int = 0
    re_requested: int = 0
    elapsed_seconds: float = 0.0

    @property
    def structures(self) -> int:
        """All structures, every category."""
        return sum(self.structures_by_category.values())

    @property
    def occupancy_rate(self) -> float:
        """Occupied over installed places, establishments and active carers together."""
        installed = self.places_installed + self.carer_places
        occupied = self.places_occupied + self.carer_places_occupied
        return occupied / installed if installed else 0.0

    @property
    def establishment_occupancy_rate(self) -> float:
        """Occupied over installed places in establishments' units (current snapshot)."""
        return self.places_occupied / self.places_installed if self.places_installed else 0.0

    @property
    def carer_occupancy_rate(self) -> float:
        """Occupied over agrément places of active carers."""
        return self.carer_places_occupied / self.carer_places if self.carer_places else 0.0

    def summary_table(self) -> Table:
        """A rich table for the terminal (the ``places seed`` command prints it)."""
        table = Table(title=f"Jeu national synthétique (seed {self.seed}, échelle {self.scale:g})")
        table.add_column("indicateur", no_wrap=True)
        table.add_column("valeur", justify="right")
        for plan in CATEGORIES:
            count = self.structures_by_category.get(plan.code, 0)
            table.add_row(f"structures {plan.code} — {plan.label}", f"{count:,}")
        table.add_row("structures (total)", f"{self.structures:,}", end_section=True)
        table.add_row("unités", f"{self.units:,}")
        table.add_row("unités avec profil de handicap", f"{self.units_with_profiles:,}")
        table.add_row("places installées (unités)", f"{self.places_installed:,}")
        table.add_row("places occupées (unités)", f"{self.places_occupied:,}")
        table.add_row(
            "places réservées / fermées", f"{self.places_reserved:,} / {self.places_closed:,}"
        )
        table.add_row("places disponibles (unités)", f"{self.places_available:,}")
        table.add_row(
            "taux d'occupation (unités)",
            f"{self.establishment_occupancy_rate:.1%}",
            end_section=True,
        )
        table.add_row("assistants familiaux", f"{self.carers:,}")
        table.add_row("dont actifs", f"{self.carers_active:,}")
        table.add_row("places agréées (actifs)", f"{self.carer_places:,}")
        table.add_row("places disponibles (AF)", f"{self.carer_places_available:,}")
        table.add_row("AF employés par un service de placement (236)", f"{self.service_carers:,}")
        table.add_row("places agréées de ces AF (actifs)", f"{self.service_carer_places:,}")
        table.add_row(
            "taux d'occupation (AF)", f"{self.carer_occupancy_rate:.1%}", end_section=True
        )
        table.add_row("taux d'occupation global", f"{self.occupancy_rate:.1%}")
        table.add_row("instantanés / déclarations", f"{self.snapshots:,} / {self.declarations:,}")
        table.add_row("déclarations des AF", f"{self.carer_declarations:,}")
        table.add_row(
            f"déclarations courantes > {STALE_AFTER_DAYS} j (dont > 30 j)",
            f"{self.stale_declarations:,} ({self.very_stale_declarations:,})",
            end_section=True,
        )
        for code, name, rate in self.highest_tension:
            table.add_row(f"tension forte — {code} {name}", f"{rate:.1%} dispo")
        table.rows[-1].end_section = bool(self.highest_tension)
        for code, name, rate in self.lowest_tension:
            table.add_row(f"tension faible — {code} {name}", f"{rate:.1%} dispo")
        table.rows[-1].end_section = bool(self.lowest_tension)
        table.add_row(
            "demandes sur 12 mois (dont redemandées)", f"{self.requests:,} ({self.re_requested:,})"
        )
        table.add_row(
            "admissions (dont hors de l'autorité)",
            f"{self.admissions:,} ({self.outside_admissions:,})",
            end_section=True,
        )
        table.add_row("durée", f"{self.elapsed_seconds:.1f} s")
        return table


async def _read_referential(conn: asyncpg.Connection) -> list[Department]:
    """Departments and communes from the database, sorted in Python (collation-proof)."""
    rows = await conn.fetch("SELECT code, name FROM departments")
    if not rows:
        raise SeedError("no department in the database: load the reference data first")
    communes = await conn.fetch(
        "SELECT insee, name, department, population,"
        " ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon FROM communes"
    )
    by_department: dict[str, list[Commune]] = defaultdict(list)
    for c in sorted(communes, key=lambda r: r["insee"]):
        by_department[c["department"]].append(
            Commune(c["insee"], c["name"], c["lat"], c["lon"], c["population"])
        )
    departments = []
    for row in sorted(rows, key=lambda r: r["code"]):
        members = by_department.get(row["code"])
        if not members:
            raise SeedError(f"department {row['code']} has no commune: reload the reference data")
        departments.append(
            Department(row["code"], row["name"], members, sum(c.population for c in members))
        )
    return departments


# -------------------------------------------------------------------- loading


_STRUCTURES_STAGE = """
CREATE TEMP TABLE seed_structures_stage (
    id uuid, finess text, finess_ej text, name text, category text, department text,
    commune text, address text, lat double precision, lon double precision,
    tarif_authority text
) ON COMMIT DROP
"""
_CARERS_STAGE = """
CREATE TEMP TABLE seed_carers_stage (
    id uuid, agrement_number text, agrement_department text, employer_finess text,
    department text, commune text, lat double precision, lon double precision,
    agrement_capacity smallint, age_min_months smallint, age_max_months smallint,
    timings text[], publics text[], formulas text[],
    disability_specialised text[], disability_supported text[], status text,
    status_until date, available_places smallint,
    version integer, declared_at timestamptz, declared_by text,
    issued_on date, valid_until date, agrement_state text, suspended_from date,
    suspension_reason text, withdrawn_on date, withdrawal_reason text,
    renewal_requested_on date, derogation_children smallint, derogation_reason text,
    derogation_until date
) ON COMMIT DROP
"""
_STRUCTURE_COLUMNS = (
    "id, finess, finess_ej, name, category, department, commune, address, tarif_authority"
)
_CARER_COLUMNS = (
    "id, agrement_number, agrement_department, department, commune,"
    " agrement_capacity, age_min_months, age_max_months, timings, publics, formulas,"
    " disability_specialised, disability_supported, status,"
    " status_until, available_places, version, declared_at, declared_by,"
    " issued_on, valid_until, agrement_state, suspended_from, suspension_reason,"
    " withdrawn_on, withdrawal_reason, renewal_requested_on, derogation_children,"
    " derogation_reason, derogation_until"
)
_CARER_HISTORY_COLUMNS = [
    "carer_id",
    "available_places",
    "status",
    "status_until",
    "version",
    "declared_at",
    "declared_by",
    "source",
]
_UNIT_COLUMNS = [
    "id",
    "structure_id",
    "name",
    "age_min_months",
    "age_max_months",
    "sexes",
    "timings",
    "publics",
    "formulas",
    "disability_specialised",
    "disability_supported",
    "installed",
]
_CAPACITY_COLUMNS = [
    "unit_id",
    "temporality",
    "installed",
    "occupied",
    "reserved",
    "closed",
    "available",
    "additional",
    "available_gender",
    "version",
    "declared_at",
    "declared_by",
    "source",
]


async def _load(conn: asyncpg.Connection, data: Generated, advance: _Advance) -> None:
    """COPY every table (staging the geographic ones), in FK order."""
    await conn.execute("DROP TABLE IF EXISTS pg_temp.seed_structures_stage")
    await conn.execute("DROP TABLE IF EXISTS pg_temp.seed_carers_stage")
    await conn.execute(_STRUCTURES_STAGE)
    await conn.execute(_CARERS_STAGE)
    await conn.copy_records_to_table("seed_structures_stage", records=data.structures)
    await conn.execute(
        f"INSERT INTO structures ({_STRUCTURE_COLUMNS}, location)"
        f" SELECT {_STRUCTURE_COLUMNS}, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography"
        " FROM seed_structures_stage"
    )
    advance("load")
    await conn.copy_records_to_table("units", records=data.units, columns=_UNIT_COLUMNS)
    advance("load")
    await conn.copy_records_to_table(
        "capacity_snapshots", records=data.snapshots, columns=_CAPACITY_COLUMNS
    )
    await conn.execute(
        f"""
        UPDATE capacity_snapshots cs
           SET location = {precision.point_sql("s", "cm")}
          FROM units u
          JOIN structures s ON s.id = u.structure_id
          JOIN communes cm ON cm.insee = s.commune
         WHERE u.id = cs.unit_id AND cs.location IS NULL
        """
    )
    advance("load")
    await conn.copy_records_to_table(
        "capacity_declarations", records=data.declarations, columns=_CAPACITY_COLUMNS
    )
    advance("load")
    await conn.copy_records_to_table("seed_carers_stage", records=data.carers)
    await conn.execute(
        f"INSERT INTO foster_carers ({_CARER_COLUMNS}, location, employer_structure)"
        f" SELECT {_CARER_COLUMNS}, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography,"
        " (SELECT s.id FROM structures s WHERE s.finess = employer_finess)"
        " FROM seed_carers_stage"
    )
    await conn.copy_records_to_table(
        "carer_declarations", records=data.carer_declarations, columns=_CARER_HISTORY_COLUMNS
    )
    advance("load")
    # Fresh statistics, so that the first searches get index-assisted plans.
    for table in OFFER_TABLES:
        await conn.execute(f"ANALYZE {table}")
    advance("load")


# ------------------------------------------------------------------- progress


class _Advance:
    """Advance named progress tasks; a no-op when progress is off."""

    def __init__(self, progress: Progress | None, tasks: dict[str, TaskID]) -> None:
        self._progress = progress
        self._tasks = tasks

    def __call__(self, name: str, amount: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._tasks[name], amount)


@contextmanager
def _progress(enabled: bool, totals: dict[str, tuple[str, int]]) -> Iterator[_Advance]:
    if not enabled:
        yield _Advance(None, {})
        return
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed:>7,}/{task.total:<7,}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        tasks = {
            name: progress.add_task(label, total=total) for name, (label, total) in totals.items()
        }
        yield _Advance(progress, tasks)


# ---------------------------------------------------------------- entry point


async def seed_national(
    conn: asyncpg.Connection,
    seed: int,
    progress: bool = True,
    *,
    scale: float = 1.0,
    replace: bool = False,
    now: datetime | None = None,
    history: bool = True,
) -> Summary:
    """Generate and load the synthetic national offer in one transaction.

    ``scale`` multiplies every national count (0.02 gives a small dataset for tests; the
    per-department minimum of one foyer de l'enfance and one carer always holds). Raises
    SeedError when the offer tables are not empty and ``replace`` is false, or when the
    reference data (departments, communes) has not been loaded. ``history``: also draw 12
    months of workflow history over the offer (``seed.history``).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    started = time.perf_counter()
    now = now or datetime.now(UTC).replace(microsecond=0)
    async with conn.transaction():
        present = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM structures) OR EXISTS (SELECT 1 FROM foster_carers)"
        )
        if present and not replace:
            raise SeedError(
                "the database already holds structures or foster carers; "
                "pass replace=True (--replace) to truncate and reseed"
            )
        if present or replace:
            tables = ", ".join(OFFER_TABLES + HISTORY_TABLES)
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        departments = await _read_referential(conn)

        # Independent streams: changing how carers are drawn leaves structures unchanged.
        rng_tension = random.Random(f"{seed}:tension")
        rng_structures = random.Random(f"{seed}:structures")
        rng_carers = random.Random(f"{seed}:carers")
        # Free-place rate per department: from ~0.4 % (saturated) to ~10 %.
        free_rates = {d.code: 0.004 + 0.10 * rng_tension.betavariate(1.1, 2.0) for d in departments}
        serials = Serials(rng_structures)
        associations = {d.code: draw_associations(rng_structures, d, serials) for d in departments}

        expected_structures = sum(
            max(
                round(p.national * scale),
                (p.minimum if p.minimum_fixed else math.floor(p.minimum * scale))
                * len(departments),
            )
            for p in CATEGORIES
        )
        expected_carers = max(
            round(NATIONAL_CARERS * scale), max(1, math.floor(20 * scale)) * len(departments)
        )
        data = Generated()
        with _progress(
            progress,
            {
                "structures": ("Établissements et unités", expected_structures),
                "carers": ("Assistants familiaux", expected_carers),
                "load": ("Chargement (COPY)", 6),
            },
        ) as advance:
            generate_structures(
                rng_structures,
                departments,
                scale,
                free_rates,
                associations,
                serials,
                now,
                data,
                advance,
            )
            # After the structures: carers name their placement service as employer.
            generate_carers(rng_carers, departments, scale, free_rates, now, data, advance)
            if history:  # the offer's past: its own stream, the present drawn as before
                offer_history(random.Random(f"{seed}:offer_history"), data, now)
            await _load(conn, data, advance)
        past = None
        if history:
            past = await seed_history(conn, seed, scale, now, service_secret())
            for table in HISTORY_TABLES:
                await conn.execute(f"ANALYZE {table}")

    names = {d.code: d.name for d in departments}
    rates = sorted(
        (
            data.dept_available[code] / data.dept_installed[code],
            code,
        )
        for code in names
        if data.dept_installed[code]
    )
    totals = data.unit_totals
    return Summary(
        seed=seed,
        scale=scale,
        structures_by_category={p.code: data.by_category[p.code] for p in CATEGORIES},
        units=len(data.units),
        units_with_profiles=data.units_with_profiles,
        carers=len(data.carers),
        carers_active=data.carers_active,
        places_installed=totals.installed,
        places_occupied=totals.occupied,
        places_reserved=totals.reserved,
        places_closed=totals.closed,
        places_available=totals.available,
        carer_places=data.carer_places,
        carer_places_occupied=data.carer_places - data.carer_available,
        carer_places_available=data.carer_available,
        snapshots=len(data.snapshots),
        declarations=len(data.declarations),
        carer_declarations=len(data.carer_declarations),
        stale_declarations=data.stale,
        very_stale_declarations=data.very_stale,
        highest_tension=[(code, names[code], rate) for rate, code in rates[:5]],
        lowest_tension=[(code, names[code], rate) for rate, code in reversed(rates[-5:])],
        service_carers=data.service_carers,
        service_carer_places=data.service_carer_places,
        requests=len(past.requests) if past else 0,
        admissions=past.admissions if past else 0,
        outside_admissions=past.outside if past else 0,
        re_requested=past.re_requested if past else 0,
        elapsed_seconds=time.perf_counter() - started,
    )


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seed.national", description="Load the synthetic national dataset."
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="the database to load, as its owner; default: the settings' owner DSN"
        " (PLACES_OWNER_DATABASE_URL, else PLACES_DATABASE_URL as postgres)",
    )
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--replace", action="store_true", help="truncate the offer first")
    parser.add_argument(
        "--no-reference", action="store_true", help="do not (re)load departments and communes"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> Summary:
    conn = await asyncpg.connect(args.dsn or get_settings().owner_dsn)
    try:
        if not args.no_reference:
            await load_reference(conn)
        return await seed_national(
            conn, args.seed, progress=not args.quiet, scale=args.scale, replace=args.replace
        )
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point; the project's ``places seed`` command calls the async API."""
    args = _parse_args(argv)
    console = Console()
    try:
        summary = asyncio.run(_main(args))
    except SeedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(summary.summary_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
