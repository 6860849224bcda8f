"""Import of the national agrément file (``places import-agrements FILE``).

The departments' agrément services keep the agréments of assistants familiaux; a national
file gathers them. Places imports it as a ``;``-separated CSV with a header line naming its
columns (layout in docs/api.md, "Import of the national agrément file"): one line per
agrément, keyed by its number.

Why it is written this way:

- **Pure parsing first, then the database** (as ``interop.finess_import``): ``read_file``
  turns bytes into validated rows and refused lines without I/O, against the referential
  (departments, communes, authorities, placement services) loaded once; a line the law or
  the referential refuses never reaches the database. Refused: a department that is not
  the commune's (the issuing authority is the competent authority of the carer's residence,
  CASF L421-3), unknown commune, unreadable or disordered dates, a capacity above three
  children without a derogation or above six at all (CASF L421-5), a derogation without a
  coded reason, a state without its date or coded reason (CASF L421-6), an unknown
  employer (an authority code, or the FINESS number of a placement service, category 236).
- **Homes are not in the file**, and the national file would not give them to Places: a new
  carer is placed at their commune's point (``location`` = ``public_location``), and a
  carer whose commune changes moves to the new commune's point. Search never reads the
  home anyway (migration 0010).
- **Set-based, batch-atomic.** Each batch of ``batch_size`` lines is COPied into a
  temporary table and merged by a few set-based statements in one transaction: the
  carers of the batch are locked, then updated where a value of the agrément differs, and
  the new ones inserted. A batch the database refuses writes nothing: its lines are all
  reported with the database's reason, and a re-run (idempotent) writes them once fixed.
- **Idempotent.** A line changes a carer only when one of its agrément's values differs
  from what is recorded; then ``agrement_version`` is bumped once. A second run of the same
  file writes nothing: no version, no event, no audit entry but the run's.
- **What the carer owns follows, in the same write.** An agrément that is not valid today
  after the line (suspended, withdrawn, expired) takes the free places with it (the trigger
  of migration 0012 requires it); a lower capacity lowers them; preferences are narrowed to
  the new ages and care modes. The carer's ``version`` is bumped only when that part
  changed, with a history row (``carer_declarations``, source ``agrement_import``).
- **Holds.** Releasing pending holds when an agrément stops being valid is a decision of
  the API (``POST /v1/agrements/{id}/suspend`` releases them with a coded reason and tells
  the holding authority). The import does not do it behind the holders' back: a line that
  would make a carer with pending holds (``held``) not valid today is refused ("réservations
  en cours : décider par l'API").
- **Events and audit.** Every carer the import creates or changes emits
  ``carer.availability_updated`` (source ``agrement_import``: the carer's public view, and
  the national counts of places) in the batch's transaction. The audit trail gets one entry
  per batch and issuing authority (``agrement.import_batch``: counts and the ids of the
  carers written, so each authority sees in its own audit what the import changed of its
  agréments), and one for the run (``agrement.import``: the report's counts).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api import changes, events
from api.auth import Principal
from api.capacity.repository import CARER_PUBLIC_COLUMNS, carer_public_columns
from api.codes import (
    AGREMENT_STATES,
    CARE_MODES,
    DEROGATION_REASONS,
    DISABILITY_PROFILES,
    FORMULAS,
    PUBLICS,
    SUSPENSION_REASONS,
    TIMINGS,
    WITHDRAWAL_REASONS,
)
from api.registry.schemas import FosterCarerOut
from geo.finess import is_valid_finess
from interop.finess_import import detect_encoding
from matching.vocabulary import (
    DISABILITY_LEVELS,
    MAX_AGE,
    MAX_AGE_MONTHS,
    DisabilityLevel,
    legacy_offer_sets,
    years_to_months,
)

#: Columns every file must name in its header (the national file's).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "number",
    "department",
    "issued_on",
    "valid_until",
    "capacity",
    "derogation_children",
    "derogation_reason",
    "derogation_until",
    "state",
    "state_from",
    "state_reason",
    "commune",
    "employer",
)
#: Columns a file may add: the suspension's end, the agrément's ages in months and
#: timings / publics / formulas (``|``-separated codes; a new carer gets ``DEFAULT_MONTHS``
#: and ``DEFAULT_NEEDS`` without them; an existing one keeps what is recorded), and its word
#: on disability profiles: ``disability``, ``profile:level`` pairs separated by ``|``
#: (``tsa:specialised|troubles_psychiques_comportement:with_support``, #16 graded; none: no
#: word on any profile for a new carer, the recorded word kept for an existing one). Files
#: of old may still name ``age_min``/``age_max`` (years) and ``care_modes`` (deprecated,
#: mapped by ``matching.vocabulary``; beside the new columns for the same thing, the line is
#: refused).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "state_until",
    "age_min_months",
    "age_max_months",
    "timings",
    "publics",
    "formulas",
    "age_min",
    "age_max",
    "care_modes",
    "disability",
)
COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

DEFAULT_MONTHS = (0, 18 * 12 + 11)
DEFAULT_NEEDS = (["durable"], ["mineur"], ["enfant"])
#: CASF L421-5: up to three children; up to six with a derogation.
MAX_CAPACITY = 3
MAX_DEROGATION = 6
#: CASF L421-3 (R421-…): an agrément is granted for five years.
VALIDITY_YEARS = 5
BATCH_SIZE = 1000
IMPORT_SOURCE = "agrement_import"

_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{1,39}$")
_DEPARTMENT = re.compile(r"^(\d{2}|2[AB]|97\d)$")

#: Who the audit trail names for an import run from the command line.
IMPORTER = Principal(sub="cli:import-agrements", role="operator")


class FileRefused(ValueError):
    """The file cannot be read at all (no header, missing or unknown columns)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused line: its number in the file, the column at fault, why, and the agrément
    number when known."""

    line: int
    field: str
    reason: str
    number: str | None = None


@dataclass(slots=True)
class AgrementRow:
    """One line, validated and ready to merge (the stage table's record)."""

    line: int
    number: str
    department: str
    commune: str
    issued_on: date
    valid_until: date
    capacity: int
    derogation_children: int | None
    derogation_reason: str | None
    derogation_until: date | None
    state: str
    suspended_from: date | None
    suspended_until: date | None
    suspension_reason: str | None
    withdrawn_on: date | None
    withdrawal_reason: str | None
    employer_authority: str | None
    employer_structure: UUID | None
    age_min_months: int | None
    age_max_months: int | None
    timings: list[str] | None
    publics: list[str] | None
    formulas: list[str] | None
    disability_specialised: list[str] | None = None
    disability_supported: list[str] | None = None

    def record(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _STAGE_COLUMNS)


@dataclass(frozen=True, slots=True)
class Referential:
    """What a line is checked against: department codes, INSEE commune → department,
    authority codes, and the placement services (FINESS 236) by FINESS number."""

    departments: frozenset[str]
    communes: dict[str, str]
    authorities: frozenset[str]
    services: dict[str, UUID]


@dataclass
class ImportReport:
    """What a run read, wrote and refused (the ``places import-agrements`` output)."""

    source: str | None = None
    encoding: str = "utf-8"
    lines_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    places_withdrawn: int = 0
    batches_refused: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def reject(self, line: int, column: str, reason: str, number: str | None = None) -> None:
        self.rejected.append(Rejection(line, column, reason, number))

    def as_dict(self) -> dict[str, Any]:
        """Counts only (no refused line's content): what the run's audit entry keeps."""
        return {
            "source": self.source,
            "encoding": self.encoding,
            "lines_read": self.lines_read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "places_withdrawn": self.places_withdrawn,
            "batches_refused": self.batches_refused,
            "rejected": len(self.rejected),
        }

    def write_rejections(self, path: str | Path) -> None:
        """The refused lines as CSV (``line;field;number;reason``), for the agrément
        services to correct their file."""
        with Path(path).open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=";")
            writer.writerow(("line", "field", "number", "reason"))
            for r in sorted(self.rejected, key=lambda r: r.line):
                writer.writerow((r.line, r.field, r.number or "", r.reason))

    def summary_table(self, max_rejections: int = 200) -> Table:
        """A rich table for the terminal: counts, then the refused lines."""
        table = Table(title=f"Import des agréments ({self.source or 'fichier'}, {self.encoding})")
        table.add_column("", overflow="fold")
        table.add_column("", justify="right", no_wrap=True)
        rows = (
            ("lignes lues", self.lines_read),
            ("assistants familiaux créés", self.created),
            ("agréments mis à jour", self.updated),
            ("inchangés", self.unchanged),
            (
                "dont places libres retirées (agrément non valide ou capacité réduite)",
                self.places_withdrawn,
            ),
            ("lots refusés par la base", self.batches_refused),
            ("lignes refusées", len(self.rejected)),
        )
        for label, value in rows:
            table.add_row(label, f"{value:,}".replace(",", " "))
        table.rows[-1].end_section = True
        for r in sorted(self.rejected, key=lambda r: r.line)[:max_rejections]:
            table.add_row(f"  ligne {r.line} ({r.field}) : {r.reason}", "refusée")
        if len(self.rejected) > max_rejections:
            table.add_row(f"  … et {len(self.rejected) - max_rejections} autres", "refusées")
        table.add_row("durée", f"{self.elapsed_seconds:.1f} s")
        return table


# --------------------------------------------------------------------------- reading


class _Bad(ValueError):
    """A value refused: the column and the reason."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def plus_years(day: date, years: int) -> date:
    """``day + interval 'n years'`` as PostgreSQL computes it (29 February → 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_FRENCH_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


def _date(values: dict[str, str], column: str) -> date | None:
    """An ISO date (``2026-03-01``) or a French one (``01/03/2026``); empty → None.
    (Regular expressions, not ``strptime``: ten times faster on 40,000 lines.)"""
    text = values.get(column, "").strip()
    if not text:
        return None
    try:
        if match := _ISO_DATE.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := _FRENCH_DATE.fullmatch(text):
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        pass
    raise _Bad(column, f"date illisible {text[:20]!r} (AAAA-MM-JJ ou JJ/MM/AAAA)")


def _int(values: dict[str, str], column: str) -> int | None:
    text = values.get(column, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        raise _Bad(column, f"nombre entier attendu, pas {text[:20]!r}")
    return int(text)


def _code(values: dict[str, str], column: str, allowed: Sequence[str], what: str) -> str | None:
    text = values.get(column, "").strip()
    if not text:
        return None
    if text not in allowed:
        raise _Bad(column, f"{what} {text[:40]!r} inconnu (codes : {', '.join(allowed)})")
    return text


def parse_line(line: int, values: dict[str, str], ref: Referential) -> AgrementRow:
    """One line's values (by column name) → a row, or ``_Bad`` naming the column."""
    number = values["number"].strip()
    if not _NUMBER.fullmatch(number):
        raise _Bad("number", f"numéro d'agrément {number[:45]!r} mal formé")
    department = values["department"].strip().upper()
    if not _DEPARTMENT.fullmatch(department) or department not in ref.departments:
        raise _Bad("department", f"département {department[:10]!r} inconnu")
    commune = values["commune"].strip()
    commune_department = ref.communes.get(commune)
    if commune_department is None:
        raise _Bad("commune", f"commune INSEE {commune[:10]!r} inconnue du référentiel")
    if commune_department != department:
        raise _Bad(
            "department",
            f"l'agrément est délivré par le département de résidence ({commune_department}"
            f" pour la commune {commune}), pas par {department}",
        )
    issued_on = _date(values, "issued_on")
    if issued_on is None:
        raise _Bad("issued_on", "date de délivrance manquante")
    valid_until = _date(values, "valid_until") or plus_years(issued_on, VALIDITY_YEARS)
    if valid_until <= issued_on:
        raise _Bad("valid_until", "fin de validité avant ou le jour de la délivrance")

    capacity = _int(values, "capacity")
    if capacity is None or capacity < 1:
        raise _Bad("capacity", "capacité manquante ou nulle (1 à 3 enfants, CASF L421-5)")
    derogation_children = _int(values, "derogation_children")
    derogation_reason = _code(values, "derogation_reason", DEROGATION_REASONS, "motif")
    derogation_until = _date(values, "derogation_until")
    if derogation_children is None and (derogation_reason or derogation_until):
        raise _Bad("derogation_children", "motif ou fin de dérogation sans nombre d'enfants")
    if derogation_children is not None:
        if not MAX_CAPACITY < derogation_children <= MAX_DEROGATION:
            raise _Bad(
                "derogation_children",
                f"une dérogation porte sur 4 à {MAX_DEROGATION} enfants (CASF L421-5),"
                f" pas {derogation_children}",
            )
        if derogation_reason is None:
            raise _Bad("derogation_reason", "dérogation sans motif codé")
        if derogation_until is not None and derogation_until < issued_on:
            raise _Bad("derogation_until", "fin de dérogation avant la délivrance")
    if capacity > MAX_DEROGATION:
        raise _Bad(
            "capacity",
            f"{capacity} enfants : au plus {MAX_DEROGATION} même avec dérogation (CASF L421-5)",
        )
    if capacity > MAX_CAPACITY and (derogation_children or 0) < capacity:
        raise _Bad(
            "capacity",
            f"{capacity} enfants : au-delà de {MAX_CAPACITY}, une dérogation pour au moins"
            f" autant d'enfants est requise (CASF L421-5)",
        )

    state = values["state"].strip() or "valid"
    if state not in AGREMENT_STATES:
        raise _Bad("state", f"état {state[:20]!r} inconnu ({', '.join(AGREMENT_STATES)})")
    state_from = _date(values, "state_from")
    state_until = _date(values, "state_until")
    suspended_from = suspended_until = suspension_reason = None
    withdrawn_on = withdrawal_reason = None
    if state == "valid":
        for column in ("state_from", "state_until", "state_reason"):
            if values.get(column, "").strip():
                raise _Bad(column, "un agrément valide n'a ni date ni motif d'état")
    else:
        if state_from is None:
            raise _Bad(
                "state_from",
                f"date de {'suspension' if state == 'suspended' else 'retrait'} manquante",
            )
        if state_from < issued_on:
            raise _Bad("state_from", "avant la délivrance de l'agrément")
        if state == "suspended":
            suspension_reason = _code(values, "state_reason", SUSPENSION_REASONS, "motif")
            if suspension_reason is None:
                raise _Bad("state_reason", "suspension sans motif codé (CASF L421-6)")
            if state_until is not None and state_until < state_from:
                raise _Bad("state_until", "fin de suspension avant son début")
            suspended_from, suspended_until = state_from, state_until
        else:
            withdrawal_reason = _code(values, "state_reason", WITHDRAWAL_REASONS, "motif")
            if withdrawal_reason is None:
                raise _Bad("state_reason", "retrait sans motif codé (CASF L421-6)")
            if state_until is not None:
                raise _Bad("state_until", "un retrait n'a pas de fin")
            withdrawn_on = state_from

    employer = values["employer"].strip().upper()
    employer_authority: str | None = None
    employer_structure: UUID | None = None
    if employer:
        if employer in ref.authorities:
            employer_authority = employer
        elif is_valid_finess(employer) and employer in ref.services:
            employer_structure = ref.services[employer]
        else:
            raise _Bad(
                "employer",
                f"employeur {employer[:20]!r} inconnu : ni autorité, ni service de placement"
                " familial (FINESS catégorie 236) du référentiel",
            )

    age_min_months, age_max_months = _ages_months(values)
    timings, publics, formulas = _needs(values)
    specialised, supported = _disability(values.get("disability", ""))

    return AgrementRow(
        line=line,
        number=number,
        department=department,
        commune=commune,
        issued_on=issued_on,
        valid_until=valid_until,
        capacity=capacity,
        derogation_children=derogation_children,
        derogation_reason=derogation_reason,
        derogation_until=derogation_until,
        state=state,
        suspended_from=suspended_from,
        suspended_until=suspended_until,
        suspension_reason=suspension_reason,
        withdrawn_on=withdrawn_on,
        withdrawal_reason=withdrawal_reason,
        employer_authority=employer_authority,
        employer_structure=employer_structure,
        age_min_months=age_min_months,
        age_max_months=age_max_months,
        timings=timings,
        publics=publics,
        formulas=formulas,
        disability_specialised=specialised,
        disability_supported=supported,
    )


def _disability(text: str) -> tuple[list[str] | None, list[str] | None]:
    """The ``disability`` cell as ``(specialised, supported)``; ``(None, None)`` when empty
    (the recorded word stays). A profile given twice, an unknown profile or level: refused."""
    text = text.strip()
    if not text:
        return None, None
    levels: dict[str, str] = {}
    for pair in (p.strip() for p in text.split("|") if p.strip()):
        profile, _, level = (x.strip() for x in pair.partition(":"))
        if profile not in DISABILITY_PROFILES or level not in DISABILITY_LEVELS:
            raise _Bad("disability", f"profil:niveau invalide : {pair[:60]!r}")
        if profile in levels:
            raise _Bad("disability", f"profil {profile} donné deux fois")
        levels[profile] = level
    return (
        sorted(p for p, v in levels.items() if v == DisabilityLevel.SPECIALISED),
        sorted(p for p, v in levels.items() if v == DisabilityLevel.WITH_SUPPORT),
    )


def _ages_months(values: dict[str, str]) -> tuple[int | None, int | None]:
    """The agrément's band in months, from ``age_min_months``/``age_max_months`` or the
    deprecated years (``age_max`` y is y×12+11 months); both bounds or neither."""
    months = _int(values, "age_min_months"), _int(values, "age_max_months")
    years = _int(values, "age_min"), _int(values, "age_max")
    if any(m is not None for m in months) and any(y is not None for y in years):
        raise _Bad("age_min", "déprécié : âges en mois ou en années, pas les deux")
    if any(y is not None for y in years):
        low, high = years
        if low is None or high is None:
            raise _Bad("age_min" if low is None else "age_max", "âges minimal et maximal ensemble")
        if not 0 <= low <= high <= MAX_AGE:
            raise _Bad("age_max", f"âges {low}–{high} hors de 0–{MAX_AGE}")
        return years_to_months(low, high)
    low, high = months
    if (low is None) != (high is None):
        raise _Bad(
            "age_min_months" if low is None else "age_max_months",
            "âges minimal et maximal ensemble",
        )
    if low is not None and high is not None and not 0 <= low <= high <= MAX_AGE_MONTHS:
        raise _Bad("age_max_months", f"âges {low}–{high} mois hors de 0–{MAX_AGE_MONTHS}")
    return low, high


def _codes(values: dict[str, str], column: str, known: tuple[str, ...]) -> list[str] | None:
    text = values.get(column, "").strip()
    if not text:
        return None
    codes = [m.strip() for m in text.split("|") if m.strip()]
    unknown = [m for m in codes if m not in known]
    if unknown or not codes:
        raise _Bad(column, f"code(s) inconnu(s) : {', '.join(unknown)[:60]}")
    return sorted(set(codes))


def _needs(values: dict[str, str]) -> tuple[list[str] | None, ...]:
    """(timings, publics, formulas), each None when absent; the deprecated ``care_modes``
    mapped (``vocabulary.legacy_offer_sets``)."""
    new = tuple(
        _codes(values, column, known)
        for column, known in (("timings", TIMINGS), ("publics", PUBLICS), ("formulas", FORMULAS))
    )
    legacy = _codes(values, "care_modes", CARE_MODES)
    if legacy is None:
        return new
    if any(n is not None for n in new):
        raise _Bad("care_modes", "déprécié : donner timings, publics et formulas seuls")
    return tuple(sorted(s) for s in legacy_offer_sets(legacy))


def read_file(
    data: bytes,
    ref: Referential,
    report: ImportReport | None = None,
    on_line: Callable[[int], None] | None = None,
) -> tuple[list[AgrementRow], ImportReport]:
    """Parse and validate a file (no I/O): the rows to merge and the report. Raises
    ``FileRefused`` when the header is missing or names unknown columns, or lacks one."""
    report = report or ImportReport()
    report.encoding = detect_encoding(data)
    text = data.decode(report.encoding, errors="replace").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FileRefused("fichier vide : la première ligne doit nommer les colonnes") from None
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise FileRefused(
            "en-tête refusé :"
            + (f" colonnes inconnues {unknown}" if unknown else "")
            + (f" colonnes manquantes {missing}" if missing else "")
            + (" colonne en double" if len(set(header)) != len(header) else "")
            + f" (attendues : {';'.join(COLUMNS)})"
        )
    rows: dict[str, AgrementRow] = {}
    for values_list in reader:
        number = reader.line_num
        if on_line is not None and number % 1000 == 0:
            on_line(1000)
        if not any(v.strip() for v in values_list):
            continue
        report.lines_read += 1
        if len(values_list) != len(header):
            report.reject(number, "", f"{len(values_list)} champs au lieu de {len(header)}")
            continue
        values = dict(zip(header, values_list, strict=True))
        agrement = values["number"].strip()[:40] or None
        if "\ufffd" in "".join(values_list):
            report.reject(number, "", f"encodage invalide en {report.encoding}", agrement)
            continue
        try:
            row = parse_line(number, values, ref)
        except _Bad as bad:
            report.reject(number, bad.column, bad.reason, agrement)
            continue
        if row.number in rows:
            report.reject(
                number, "number", f"agrément en double (ligne {rows[row.number].line})", agrement
            )
            continue
        rows[row.number] = row
    return list(rows.values()), report


# --------------------------------------------------------------------------- writing

_STAGE_COLUMNS = (
    "line",
    "number",
    "department",
    "commune",
    "issued_on",
    "valid_until",
    "capacity",
    "derogation_children",
    "derogation_reason",
    "derogation_until",
    "state",
    "suspended_from",
    "suspended_until",
    "suspension_reason",
    "withdrawn_on",
    "withdrawal_reason",
    "employer_authority",
    "employer_structure",
    "age_min_months",
    "age_max_months",
    "timings",
    "publics",
    "formulas",
    "disability_specialised",
    "disability_supported",
)
_STAGE = """
CREATE TEMP TABLE agrement_stage (
    line integer, number text PRIMARY KEY, department text, commune text,
    issued_on date, valid_until date, capacity smallint, derogation_children smallint,
    derogation_reason text, derogation_until date, state text, suspended_from date,
    suspended_until date, suspension_reason text, withdrawn_on date, withdrawal_reason text,
    employer_authority text, employer_structure uuid, age_min_months smallint,
    age_max_months smallint, timings text[], publics text[], formulas text[],
    disability_specialised text[], disability_supported text[]
) ON COMMIT DROP
"""

_VALID_TODAY = (
    "places_agrement_valid({p}agrement_state, {p}issued_on, {p}valid_until,"
    " {p}suspended_from, {p}suspended_until, current_date)"
)

# The batch's known carers, locked (in id order, as every writer of several carers), with
# what they were: a declaration or a hold waits for the batch, and the events' national
# counts start from these values.
_LOCK = f"""
SELECT c.id, c.agrement_number, c.available_places, c.status,
       {_VALID_TODAY.format(p="c.")} AS valid_today
  FROM foster_carers c
  JOIN agrement_stage st ON st.number = c.agrement_number
 ORDER BY c.id
   FOR UPDATE OF c
"""

# A line that would end a valid agrément while holds are pending on the carer: the API
# releases those holds and tells their authority; the import leaves that decision to it.
_HOLDS_PENDING = f"""
SELECT st.line, st.number
  FROM agrement_stage st
  JOIN foster_carers c ON c.agrement_number = st.number
 WHERE {_VALID_TODAY.format(p="c.")}
   AND NOT places_agrement_valid(st.state, st.issued_on, st.valid_until, st.suspended_from,
                                 st.suspended_until, current_date)
   AND EXISTS (SELECT 1 FROM holds h WHERE h.carer_id = c.id AND h.status = 'held')
"""

# Existing carers whose agrément differs from the line. Values absent from the file (ages,
# timings, publics, formulas, employer) keep what is recorded. Free places follow the
# agrément in the same write (zero when not valid today, at most the capacity); preferences
# are narrowed to the agrément (back to the agrément's own when nothing of them is left); the
# carer's version is bumped only when that part changed.
_UPDATE = f"""
WITH input AS (
    SELECT st.*, c.id AS carer_id, cm.location AS commune_point,
           coalesce(st.age_min_months, c.age_min_months) AS new_age_min,
           coalesce(st.age_max_months, c.age_max_months) AS new_age_max,
           coalesce(st.timings, c.timings) AS new_timings,
           coalesce(st.publics, c.publics) AS new_publics,
           coalesce(st.formulas, c.formulas) AS new_formulas,
           coalesce(st.disability_specialised, c.disability_specialised) AS new_specialised,
           coalesce(st.disability_supported, c.disability_supported) AS new_supported,
           CASE WHEN st.employer_authority IS NULL AND st.employer_structure IS NULL
                THEN c.employer_authority ELSE st.employer_authority END AS new_employer_authority,
           CASE WHEN st.employer_authority IS NULL AND st.employer_structure IS NULL
                THEN c.employer_structure ELSE st.employer_structure END AS new_employer_structure,
           places_agrement_valid(st.state, st.issued_on, st.valid_until, st.suspended_from,
                                 st.suspended_until, current_date) AS new_valid_today
      FROM agrement_stage st
      JOIN foster_carers c ON c.agrement_number = st.number
      JOIN communes cm ON cm.insee = st.commune
), target AS (
    SELECT i.*,
           CASE WHEN i.new_valid_today THEN least(c.available_places, i.capacity) ELSE 0 END
               AS new_available,
           greatest(c.preferred_age_min_months, i.new_age_min) AS pref_min,
           least(c.preferred_age_max_months, i.new_age_max) AS pref_max,
           ARRAY(SELECT m FROM unnest(c.preferred_timings) m
                  WHERE m = ANY(i.new_timings)) AS pref_timings,
           ARRAY(SELECT m FROM unnest(c.preferred_publics) m
                  WHERE m = ANY(i.new_publics)) AS pref_publics,
           ARRAY(SELECT m FROM unnest(c.preferred_formulas) m
                  WHERE m = ANY(i.new_formulas)) AS pref_formulas,
           c.available_places AS old_available
      FROM input i
      JOIN foster_carers c ON c.id = i.carer_id
     WHERE (c.agrement_department, c.commune, c.issued_on, c.valid_until, c.agrement_capacity,
            c.derogation_children, c.derogation_reason, c.derogation_until, c.agrement_state,
            c.suspended_from, c.suspended_until, c.suspension_reason, c.withdrawn_on,
            c.withdrawal_reason, c.employer_authority, c.employer_structure, c.age_min_months,
            c.age_max_months, c.timings, c.publics, c.formulas, c.disability_specialised,
            c.disability_supported)
           IS DISTINCT FROM
           (i.department, i.commune, i.issued_on, i.valid_until, i.capacity,
            i.derogation_children, i.derogation_reason, i.derogation_until, i.state,
            i.suspended_from, i.suspended_until, i.suspension_reason, i.withdrawn_on,
            i.withdrawal_reason, i.new_employer_authority, i.new_employer_structure,
            i.new_age_min, i.new_age_max, i.new_timings, i.new_publics, i.new_formulas,
            i.new_specialised, i.new_supported)
), final AS (
    SELECT t.*,
           CASE WHEN t.pref_min <= t.pref_max THEN t.pref_min ELSE t.new_age_min END AS p_min,
           CASE WHEN t.pref_min <= t.pref_max THEN t.pref_max ELSE t.new_age_max END AS p_max,
           CASE WHEN cardinality(t.pref_timings) > 0 THEN t.pref_timings
                ELSE t.new_timings END AS p_timings,
           CASE WHEN cardinality(t.pref_publics) > 0 THEN t.pref_publics
                ELSE t.new_publics END AS p_publics,
           CASE WHEN cardinality(t.pref_formulas) > 0 THEN t.pref_formulas
                ELSE t.new_formulas END AS p_formulas
      FROM target t
), updated AS (
    UPDATE foster_carers c
       SET agrement_department = f.department,
           department = f.department,
           commune = f.commune,
           location = CASE WHEN c.commune = f.commune THEN c.location ELSE f.commune_point END,
           issued_on = f.issued_on,
           valid_until = f.valid_until,
           agrement_capacity = f.capacity,
           derogation_children = f.derogation_children,
           derogation_reason = f.derogation_reason,
           derogation_until = f.derogation_until,
           agrement_state = f.state,
           suspended_from = f.suspended_from,
           suspended_until = f.suspended_until,
           suspension_reason = f.suspension_reason,
           withdrawn_on = f.withdrawn_on,
           withdrawal_reason = f.withdrawal_reason,
           -- A renewal decided (a later end) answers the renewal request.
           renewal_requested_on = CASE WHEN f.valid_until > c.valid_until THEN NULL
                                       ELSE c.renewal_requested_on END,
           employer_authority = f.new_employer_authority,
           employer_structure = f.new_employer_structure,
           -- A new employer: its default openness (trigger of 0012).
           open_to_other_authorities = CASE
               WHEN (c.employer_authority, c.employer_structure)
                    IS NOT DISTINCT FROM (f.new_employer_authority, f.new_employer_structure)
               THEN c.open_to_other_authorities END,
           age_min_months = f.new_age_min,
           age_max_months = f.new_age_max,
           timings = f.new_timings,
           publics = f.new_publics,
           formulas = f.new_formulas,
           disability_specialised = f.new_specialised,
           disability_supported = f.new_supported,
           available_places = f.new_available,
           preferred_age_min_months = f.p_min,
           preferred_age_max_months = f.p_max,
           preferred_timings = f.p_timings,
           preferred_publics = f.p_publics,
           preferred_formulas = f.p_formulas,
           agrement_version = c.agrement_version + 1,
           version = c.version + CASE
               WHEN (c.available_places, c.preferred_age_min_months,
                     c.preferred_age_max_months, c.preferred_timings, c.preferred_publics,
                     c.preferred_formulas)
                    IS DISTINCT FROM (f.new_available, f.p_min, f.p_max, f.p_timings,
                                      f.p_publics, f.p_formulas)
               THEN 1 ELSE 0 END,
           declared_at = CASE WHEN c.available_places <> f.new_available THEN now()
                              ELSE c.declared_at END,
           declared_by = CASE WHEN c.available_places <> f.new_available THEN $1
                              ELSE c.declared_by END
      FROM final f
     WHERE c.id = f.carer_id
 RETURNING {carer_public_columns("c")},
           c.authority, f.old_available
), history AS (
    INSERT INTO carer_declarations
           (carer_id, available_places, status, status_until, version, declared_at,
            declared_by, source)
    SELECT id, available_places, status, status_until, version, declared_at, $1, $2
      FROM updated
     WHERE available_places <> old_available
)
SELECT * FROM updated
"""

# New carers: at their commune's point (the file has no home), no free place yet (the carer
# declares them), employed by the issuing authority when the line names no employer. The
# authority is the commune's, as the trigger of 0007 would set it (given here, it spares the
# trigger a lookup per row).
_INSERT = f"""
INSERT INTO foster_carers
       (agrement_number, agrement_department, department, commune, authority, location,
        agrement_capacity, age_min_months, age_max_months, timings, publics, formulas,
        available_places, declared_by,
        issued_on, valid_until, agrement_state, suspended_from, suspended_until,
        suspension_reason, withdrawn_on, withdrawal_reason, derogation_children,
        derogation_reason, derogation_until, employer_authority, employer_structure,
        disability_specialised, disability_supported)
SELECT st.number, st.department, st.department, st.commune, cm.authority, cm.location,
       st.capacity, coalesce(st.age_min_months, $2), coalesce(st.age_max_months, $3),
       coalesce(st.timings, $4::text[]), coalesce(st.publics, $5::text[]),
       coalesce(st.formulas, $6::text[]), 0, $1,
       st.issued_on, st.valid_until, st.state, st.suspended_from, st.suspended_until,
       st.suspension_reason, st.withdrawn_on, st.withdrawal_reason, st.derogation_children,
       st.derogation_reason, st.derogation_until, st.employer_authority, st.employer_structure,
       coalesce(st.disability_specialised, '{{}}'), coalesce(st.disability_supported, '{{}}')
  FROM agrement_stage st
  JOIN communes cm ON cm.insee = st.commune
 WHERE NOT EXISTS (SELECT 1 FROM foster_carers c WHERE c.agrement_number = st.number)
 ORDER BY st.line
RETURNING {CARER_PUBLIC_COLUMNS}, authority
"""


@dataclass(slots=True)
class _BatchResult:
    created: int = 0
    updated: int = 0
    places_withdrawn: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


async def _merge(
    conn: asyncpg.Connection, rows: Sequence[AgrementRow], source: str, batch: int
) -> _BatchResult:
    """Merge one batch in one transaction: everything or nothing."""
    result = _BatchResult()
    async with conn.transaction():
        await conn.execute("DROP TABLE IF EXISTS pg_temp.agrement_stage")
        await conn.execute(_STAGE)
        await conn.copy_records_to_table(
            "agrement_stage", records=[r.record() for r in rows], columns=_STAGE_COLUMNS
        )
        # Statistics for the planner: index lookups into foster_carers, not scans.
        await conn.execute("ANALYZE agrement_stage")
        before = {r["id"]: r for r in await conn.fetch(_LOCK)}
        pending = await conn.fetch(_HOLDS_PENDING)
        if pending:
            result.refused = [(r["line"], r["number"]) for r in pending]
            await conn.execute(
                "DELETE FROM agrement_stage WHERE number = ANY($1::text[])",
                [r["number"] for r in pending],
            )
        updated = await conn.fetch(_UPDATE, IMPORTER.sub, IMPORT_SOURCE)
        created = await conn.fetch(_INSERT, IMPORTER.sub, *DEFAULT_MONTHS, *DEFAULT_NEEDS)
        result.created, result.updated = len(created), len(updated)
        result.places_withdrawn = sum(
            1 for r in updated if r["available_places"] < r["old_available"]
        )
        written: list[tuple[asyncpg.Record, dict[str, Any]]] = [
            (r, {"status": before[r["id"]]["status"], "available_places": r["old_available"]})
            for r in updated
        ]
        written += [(r, {"status": None, "available_places": 0}) for r in created]
        await changes.emit_many(
            conn,
            [
                events.carer_availability_updated(
                    r["department"],
                    FosterCarerOut.model_validate(dict(r)).model_dump(mode="json"),
                    IMPORT_SOURCE,
                    authority=r["authority"],
                    before=was,
                )
                for r, was in written
            ],
        )
        by_authority: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"created": 0, "updated": 0, "carers": []}
        )
        for kind, records in (("created", created), ("updated", updated)):
            for r in records:
                entry = by_authority[r["authority"]]
                entry[kind] += 1
                entry["carers"].append(str(r["id"]))
                entry["department"] = r["department"]
        for authority, entry in sorted(by_authority.items()):
            department = entry.pop("department")
            await changes.audit(
                conn,
                IMPORTER,
                "agrement.import_batch",
                "agrement_file",
                source[:200],
                department,
                {"batch": batch, **entry},
                authority=authority,
            )
    return result


async def load_referential(conn: asyncpg.Connection) -> Referential:
    """The referential as the database has it (read once per run)."""
    departments = frozenset(r["code"] for r in await conn.fetch("SELECT code FROM departments"))
    communes = {
        r["insee"]: r["department"]
        for r in await conn.fetch("SELECT insee, department FROM communes")
    }
    authorities = frozenset(r["code"] for r in await conn.fetch("SELECT code FROM authorities"))
    services = {
        r["finess"]: r["id"]
        for r in await conn.fetch("SELECT finess, id FROM structures WHERE category = '236'")
    }
    return Referential(departments, communes, authorities, services)


async def import_agrements(
    conn: asyncpg.Connection,
    data: bytes,
    *,
    source_name: str = "agrements.csv",
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> ImportReport:
    """Read, validate and merge a file's bytes; returns the report (``FileRefused`` when
    its header cannot be read: nothing is written then).

    Batches of ``batch_size`` lines are merged in one transaction each; a batch the
    database refuses writes nothing and all its lines are reported with the reason.
    """
    start = time.perf_counter()
    report = ImportReport(source=source_name)
    ref = await load_referential(conn)
    total = data.count(b"\n") + 1
    bar = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed:>9,}/{task.total:<9,}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not (progress and total >= 5_000),
    )
    with bar:
        reading = bar.add_task("lecture du fichier", total=total)
        rows, report = read_file(data, ref, report, lambda n: bar.advance(reading, n))
        bar.update(reading, completed=total)
        writing = bar.add_task("écriture", total=len(rows))
        for index, start_at in enumerate(range(0, len(rows), batch_size), 1):
            batch = rows[start_at : start_at + batch_size]
            try:
                result = await _merge(conn, batch, source_name, index)
            except asyncpg.PostgresError as exc:
                report.batches_refused += 1
                why = getattr(exc, "constraint_name", None) or exc.__class__.__name__
                for row in batch:
                    report.reject(
                        row.line,
                        "",
                        f"lot {index} refusé par la base ({why}) : aucune de ses lignes"
                        " n'est écrite",
                        row.number,
                    )
                bar.advance(writing, len(batch))
                continue
            for line, number in result.refused:
                report.reject(
                    line,
                    "state",
                    "réservations en cours sur cet assistant familial : décider de la"
                    " suspension ou du retrait par l'API (POST /v1/agrements/{id}/suspend"
                    " ou /withdraw), qui les libère",
                    number,
                )
            report.created += result.created
            report.updated += result.updated
            report.places_withdrawn += result.places_withdrawn
            bar.advance(writing, len(batch))
    refused = {r.line for r in report.rejected}
    report.unchanged = (
        sum(1 for r in rows if r.line not in refused) - report.created - report.updated
    )
    report.elapsed_seconds = time.perf_counter() - start
    await changes.audit(
        conn,
        IMPORTER,
        "agrement.import",
        "agrement_file",
        source_name[:200],
        None,
        report.as_dict(),
    )
    return report


async def import_file(
    conn: asyncpg.Connection,
    path: str | Path,
    *,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> ImportReport:
    """Import the file at ``path`` (read at once: about 4 MB for the 40,000 agréments)."""
    path = Path(path)
    return await import_agrements(
        conn, path.read_bytes(), source_name=path.name, batch_size=batch_size, progress=progress
    )
