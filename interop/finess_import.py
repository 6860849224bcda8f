"""Import of the official FINESS extract (``places import-finess FILE``).

The national registry publishes its establishments as one ``;``-separated file
(``etalab-cs1100507-stock-*.csv``): a first line ``finess;etalab;<n>;<date>``, then one
``structureet`` line of 32 fields per establishment, then one ``geolocalisation`` line per
geocoded establishment (``geolocalisation;nofinesset;x;y;source;date``), Latin-1 in most
editions, UTF-8 in some; fields containing ``;`` or ``"`` are quoted with doubled quotes;
each ``structureet`` line ends with an empty field.

Why it is written this way:

- **Pure parsing first, then the database.** ``read_extract`` turns bytes into validated
  rows and a report without I/O (unit-testable, and a bad line never reaches the
  database); ``import_extract`` then upserts the rows.
- **Only the child-protection categories** of the design (``api.codes.PDE_CATEGORIES``) are
  kept; the ~100,000 other establishments are counted per category and skipped.
- **Coordinates are reprojected from the projection the line names** (the last
  comma-separated token of its source field): ``LAMBERT_93`` / ``EPSG:2154`` in metropolitan
  France, the local UTM projections overseas (older editions say ``UTM_N20``, ``UTM_N22``,
  ``UTM_S40``, ``UTM_S38``; newer ones ``EPSG:5490 …``, ``EPSG:2972 …``, ``EPSG:2975 …``,
  ``EPSG:4471 …``). Any other projection is refused with the line number: pushing UTM metres
  through Lambert-93 lands thousands of kilometres away. The point must then fall in France
  (``geo.bounds``) and in its own department's territory.
- **A refused ``geolocalisation`` line does not lose the establishment**: it is imported at
  its commune's point and flagged (``location_precision = 'commune'``), exactly like an
  establishment the extract does not geocode.
- **Overseas codes**: the extract tags ``9A`` Guadeloupe, ``9B`` Martinique, ``9C`` Guyane,
  ``9D`` La Réunion, ``9F`` Mayotte (mapped to 971…976). ``9A`` also carries Saint-Barthélemy
  (postcode 97133) and Saint-Martin (97150): those collectivités (977, 978) run their own
  child protection and are not departments of the referential, so their lines are refused
  with that reason, as are ``9E`` (Saint-Pierre-et-Miquelon) and ``9J`` (Wallis-et-Futuna).
- **Idempotent upsert, atomic per structure.** Rows are merged by FINESS number in batches,
  one transaction per batch; a row changes only when a value differs, so a second run
  changes nothing (and emits no event). A later extract updates name, address, category,
  commune and point; it never touches units' capacity. Should the database refuse a batch,
  its rows are retried one transaction each, so only the faulty row is reported and nothing
  is half-written.
- Each created or changed structure emits ``structure.created`` / ``structure.updated`` in
  the same transaction (transactional outbox), and the run leaves one audit entry.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api import changes, events, precision
from api.auth import Principal
from api.codes import PDE_CATEGORIES
from geo.bounds import BOXES, in_france
from geo.finess import OVERSEAS_FINESS_PREFIX, is_valid_finess
from interop.finess_units import DEFAULT_UNITS

STRUCTURE_FIELDS = 32
GEOLOCATION_FIELDS = 6

# Field positions of a ``structureet`` line (0 is the line type).
NOFINESSET, NOFINESSEJ, RS, RSLONGUE = 1, 2, 3, 4
NUMVOIE, TYPVOIE, VOIE, COMPVOIE, LIEUDITBP = 7, 8, 9, 10, 11
COMMUNE, DEPARTEMENT, LIGNEACHEMINEMENT = 12, 13, 15
CATEGETAB, LIBMFT, DATEMAJ = 18, 25, 30

#: The extract's department code overseas → the referential's code (9A → 971, …).
EXTRACT_DEPARTMENTS: dict[str, str] = {v: k for k, v in OVERSEAS_FINESS_PREFIX.items()}
#: Collectivités tagged 9A in the extract, told apart by postcode; not departments here.
COLLECTIVITIES_BY_POSTCODE: dict[str, str] = {
    "97133": "Saint-Barthélemy (977)",
    "97150": "Saint-Martin (978)",
}
OTHER_TERRITORIES: dict[str, str] = {
    "9E": "Saint-Pierre-et-Miquelon (975)",
    "9J": "Wallis-et-Futuna (986)",
}

#: Projections the extract names, by their old names (the last token of the source).
LEGACY_PROJECTIONS: dict[str, int] = {
    "LAMBERT_93": 2154,
    "UTM_N20": 5490,  # Guadeloupe, Martinique (RGAF09 / UTM 20N)
    "UTM_N22": 2972,  # Guyane (RGFG95 / UTM 22N)
    "UTM_S40": 2975,  # La Réunion (RGR92 / UTM 40S)
    "UTM_S38": 4471,  # Mayotte (RGM04 / UTM 38S)
}
#: EPSG codes accepted in newer editions (``EPSG:2154 RGF93 / Lambert-93 (Métropole)``),
#: with the WGS84 UTM equivalents some tools write.
SUPPORTED_EPSG: frozenset[int] = frozenset(
    {2154, 5490, 4559, 32620, 2972, 32622, 2975, 32740, 4471, 32738}
)
_EPSG = re.compile(r"^EPSG:(\d{4,5})\b")

#: The box of ``geo.bounds`` a department's points must fall in.
_TERRITORY = {
    "971": "guadeloupe",
    "972": "martinique",
    "973": "guyane",
    "974": "la_reunion",
    "976": "mayotte",
}
_BOX = {box.name: box for box in BOXES}

BATCH_SIZE = 500

#: Who the audit trail names for an import run from the command line.
IMPORTER = Principal(sub="cli:import-finess", role="operator")


class LineError(ValueError):
    """A line that cannot be read as extract fields (bad quoting)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused line: its number in the file, why, and the FINESS number when known."""

    line: int
    reason: str
    finess: str | None = None


@dataclass(slots=True)
class StructureRow:
    """One establishment of a PDE category, validated and ready to merge."""

    line: int
    finess: str
    finess_ej: str | None
    name: str
    category: str
    department: str
    commune: str
    address: str | None
    postal_code: str | None
    tarif_authority: str | None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class _Geolocation:
    line: int
    x: str
    y: str
    source: str


@dataclass
class ImportReport:
    """What a run read, wrote, skipped and refused (the ``places import-finess`` output)."""

    encoding: str = "utf-8"
    extract: str | None = None
    lines_read: int = 0
    structures_read: int = 0
    geolocations_read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    default_units: int = 0
    located_by_commune: int = 0
    skipped_by_category: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejection] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def skipped(self) -> int:
        """Establishments of a category outside child protection."""
        return sum(self.skipped_by_category.values())

    def reject(self, line: int, reason: str, finess: str | None = None) -> None:
        self.rejected.append(Rejection(line, reason, finess))

    def as_dict(self) -> dict[str, Any]:
        """Counts only (no rejected line's content): what the audit entry keeps."""
        return {
            "encoding": self.encoding,
            "extract": self.extract,
            "lines_read": self.lines_read,
            "structures_read": self.structures_read,
            "geolocations_read": self.geolocations_read,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "default_units": self.default_units,
            "located_by_commune": self.located_by_commune,
            "skipped": self.skipped,
            "skipped_by_category": dict(sorted(self.skipped_by_category.items())),
            "rejected": len(self.rejected),
        }

    def summary_table(self, max_rejections: int = 200) -> Table:
        """A rich table for the terminal: counts, skipped categories, refused lines."""
        table = Table(title=f"Import FINESS ({self.extract or 'extrait'}, {self.encoding})")
        table.add_column("", overflow="fold")
        table.add_column("", justify="right", no_wrap=True)
        rows = (
            ("lignes lues", self.lines_read),
            ("établissements lus", self.structures_read),
            ("géolocalisations lues", self.geolocations_read),
            ("importés (nouveaux)", self.imported),
            ("mis à jour", self.updated),
            ("inchangés", self.unchanged),
            ("unités par défaut créées", self.default_units),
            ("placés au point de leur commune (signalés)", self.located_by_commune),
            ("ignorés (catégorie hors protection de l'enfance)", self.skipped),
            ("lignes refusées", len(self.rejected)),
        )
        for label, value in rows:
            table.add_row(label, f"{value:,}".replace(",", " "))
        table.rows[-1].end_section = True
        for category, count in self.skipped_by_category.most_common(15):
            table.add_row(f"  ignorés, catégorie {category}", str(count))
        if len(self.skipped_by_category) > 15:
            table.add_row("  …", f"{len(self.skipped_by_category) - 15} autres catégories")
        table.rows[-1].end_section = bool(self.skipped_by_category)
        for r in sorted(self.rejected, key=lambda r: r.line)[:max_rejections]:
            table.add_row(f"  ligne {r.line} : {r.reason}", "refusée")
        if len(self.rejected) > max_rejections:
            table.add_row(f"  … et {len(self.rejected) - max_rejections} autres", "refusées")
        table.add_row("durée", f"{self.elapsed_seconds:.1f} s")
        return table


# --------------------------------------------------------------------------- reading


def detect_encoding(data: bytes) -> str:
    """``utf-8`` when the non-ASCII lines mostly decode as UTF-8, else ``cp1252``.

    Decided per file from all its lines, so that one corrupt line in a UTF-8 file is
    refused on its own instead of turning the whole file into mojibake. ``cp1252`` (the
    Windows superset of Latin-1 the registry exports) keeps ``œ`` and ``’``.
    """
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    good = bad = 0
    for raw in data.split(b"\n"):
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    return "utf-8" if good and good >= bad else "cp1252"


def split_fields(text: str) -> list[str]:
    """The ``;``-separated fields of one line; quoted fields may hold ``;`` and ``""``."""
    if '"' not in text:
        return text.split(";")
    try:
        return next(csv.reader([text], delimiter=";", quotechar='"', strict=True))
    except csv.Error as exc:
        raise LineError(f"guillemets mal formés ({exc})") from exc


def projection_epsg(source: str) -> int | None:
    """The EPSG code of the projection named at the end of a source field, or None."""
    token = source.rsplit(",", 1)[-1].strip()
    if token.upper() in LEGACY_PROJECTIONS:
        return LEGACY_PROJECTIONS[token.upper()]
    match = _EPSG.match(token)
    if match and int(match.group(1)) in SUPPORTED_EPSG:
        return int(match.group(1))
    return None


@cache
def _transformer(epsg: int) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def to_wgs84(epsg: int, xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    """(lat, lon) of projected points, rounded to 1e-7° (about 1 cm) so reruns compare equal."""
    if not xs:
        return []
    lons, lats = _transformer(epsg).transform(list(xs), list(ys))
    return [
        (round(float(lat), 7), round(float(lon), 7)) for lat, lon in zip(lats, lons, strict=True)
    ]


def _department(code: str, postal_code: str | None) -> tuple[str | None, str | None]:
    """(referential department, None) or (None, reason) for the extract's code."""
    if code in EXTRACT_DEPARTMENTS:
        if code == "9A" and postal_code in COLLECTIVITIES_BY_POSTCODE:
            name = COLLECTIVITIES_BY_POSTCODE[postal_code]
            return None, f"{name} : collectivité d'outre-mer hors référentiel des départements"
        return EXTRACT_DEPARTMENTS[code], None
    if code in OTHER_TERRITORIES:
        return None, f"{OTHER_TERRITORIES[code]} : hors référentiel des départements"
    return code, None


def _address(fields: list[str]) -> str | None:
    street = " ".join(
        p for p in (fields[NUMVOIE], fields[COMPVOIE], fields[TYPVOIE], fields[VOIE]) if p
    )
    parts = [p for p in (street, fields[LIEUDITBP]) if p]
    return ", ".join(parts) or None


def read_extract(
    data: bytes,
    departments: set[str],
    communes: dict[str, str],
    report: ImportReport | None = None,
    on_line: Callable[[int], None] | None = None,
) -> tuple[list[StructureRow], ImportReport]:
    """Parse and validate an extract (no I/O): the PDE establishments to merge, and the report.

    ``departments`` and ``communes`` (INSEE → department) are the referential, so that an
    unknown commune is refused here rather than by a foreign key. ``on_line`` is called
    every 1,000 lines (progress bar).
    """
    report = report or ImportReport()
    report.encoding = detect_encoding(data)
    raw_lines = data.split(b"\n")
    last_is_partial = bool(raw_lines) and raw_lines[-1] != b""
    if not last_is_partial and raw_lines:
        raw_lines.pop()
    total = len(raw_lines)
    rows: dict[str, StructureRow] = {}
    geolocations: dict[str, _Geolocation] = {}

    for number, raw in enumerate(raw_lines, 1):
        if on_line is not None and number % 1000 == 0:
            on_line(1000)
        raw = raw.rstrip(b"\r")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        report.lines_read += 1
        tail = " (ligne tronquée en fin de fichier)" if last_is_partial and number == total else ""
        try:
            text = raw.decode(report.encoding)
        except UnicodeDecodeError:
            report.reject(number, f"encodage invalide : octets illisibles en {report.encoding}")
            continue
        if "\x00" in text:
            report.reject(number, "caractère nul dans la ligne (fichier binaire ou corrompu)")
            continue
        try:
            fields = split_fields(text)
        except LineError as exc:
            report.reject(number, f"{exc}{tail}")
            continue
        kind = fields[0].strip()
        if kind == "finess":
            if number == 1:
                report.extract = ";".join(fields[1:4])
            else:
                report.reject(number, "ligne d'en-tête « finess;… » ailleurs qu'en première ligne")
            continue
        if kind == "structureet":
            report.structures_read += 1
            _structure(number, fields, tail, departments, communes, rows, report)
        elif kind == "geolocalisation":
            if len(fields) < GEOLOCATION_FIELDS:
                report.reject(number, f"{len(fields)} champs au lieu de {GEOLOCATION_FIELDS}{tail}")
                continue
            if any(f.strip() for f in fields[GEOLOCATION_FIELDS:]):
                report.reject(number, f"{len(fields)} champs au lieu de {GEOLOCATION_FIELDS}")
                continue
            report.geolocations_read += 1
            finess = fields[1].strip()
            previous = geolocations.get(finess)
            if previous is not None:
                report.reject(number, f"géolocalisation en double (ligne {previous.line})", finess)
                continue
            geolocations[finess] = _Geolocation(number, fields[2], fields[3], fields[4])
        else:
            report.reject(number, f"type de ligne inconnu « {kind[:40]} »{tail}")
    if on_line is not None:
        on_line(total % 1000)
    _locate(list(rows.values()), geolocations, report)
    return list(rows.values()), report


def _structure(
    number: int,
    fields: list[str],
    tail: str,
    departments: set[str],
    communes: dict[str, str],
    rows: dict[str, StructureRow],
    report: ImportReport,
) -> None:
    if len(fields) < STRUCTURE_FIELDS:
        report.reject(number, f"{len(fields)} champs au lieu de {STRUCTURE_FIELDS}{tail}")
        return
    if any(f.strip() for f in fields[STRUCTURE_FIELDS:]):
        report.reject(number, f"{len(fields)} champs au lieu de {STRUCTURE_FIELDS}")
        return
    fields = [f.strip() for f in fields[:STRUCTURE_FIELDS]]
    category = fields[CATEGETAB]
    if category not in PDE_CATEGORIES:
        report.skipped_by_category[category or "(vide)"] += 1
        return
    finess = fields[NOFINESSET]
    if not is_valid_finess(finess):
        report.reject(number, f"numéro FINESS {finess!r} invalide (clé de contrôle)", finess)
        return
    if finess in rows:
        report.reject(number, f"FINESS en double (ligne {rows[finess].line})", finess)
        return
    routing = fields[LIGNEACHEMINEMENT]
    postal_code = routing[:5] if re.match(r"^\d{5}\b", routing) else None
    department, why = _department(fields[DEPARTEMENT], postal_code)
    if department is None:
        report.reject(number, why or "département inconnu", finess)
        return
    if department not in departments:
        report.reject(number, f"département {fields[DEPARTEMENT]!r} inconnu", finess)
        return
    code = fields[COMMUNE]
    insee = ("97" if department.startswith("97") else department) + code
    if not re.fullmatch(r"\d{3}", code) or communes.get(insee) != department:
        report.reject(number, f"commune INSEE {insee!r} inconnue du référentiel", finess)
        return
    name = fields[RSLONGUE] or fields[RS]
    if not name:
        report.reject(number, "raison sociale vide", finess)
        return
    ej = fields[NOFINESSEJ]
    rows[finess] = StructureRow(
        line=number,
        finess=finess,
        finess_ej=ej if is_valid_finess(ej) else None,
        name=name[:300],
        category=category,
        department=department,
        commune=insee,
        address=_address(fields),
        postal_code=postal_code,
        tarif_authority=fields[LIBMFT] or None,
    )


def _locate(
    rows: list[StructureRow], geolocations: dict[str, _Geolocation], report: ImportReport
) -> None:
    """Reproject the kept establishments' points (one pyproj call per projection); a
    refused geolocation line leaves its establishment at its commune's point, flagged."""
    by_epsg: dict[int, list[tuple[StructureRow, _Geolocation, float, float]]] = {}
    for row in rows:
        geo = geolocations.get(row.finess)
        if geo is None or not (geo.x.strip() or geo.y.strip()):
            continue
        try:
            x = float(geo.x.strip().replace(",", "."))
            y = float(geo.y.strip().replace(",", "."))
        except ValueError:
            report.reject(geo.line, f"coordonnées illisibles ({geo.x!r}, {geo.y!r})", row.finess)
            continue
        epsg = projection_epsg(geo.source)
        if epsg is None:
            token = geo.source.rsplit(",", 1)[-1].strip()[:60]
            report.reject(geo.line, f"projection inconnue « {token} »", row.finess)
            continue
        by_epsg.setdefault(epsg, []).append((row, geo, x, y))
    for epsg, items in by_epsg.items():
        points = to_wgs84(epsg, [i[2] for i in items], [i[3] for i in items])
        for (row, geo, _, _), (lat, lon) in zip(items, points, strict=True):
            if not in_france(lat, lon):
                report.reject(
                    geo.line, f"coordonnées hors de France ({lat:.4f}, {lon:.4f})", row.finess
                )
                continue
            territory = _BOX[_TERRITORY.get(row.department, "metropole")]
            if not territory.contains(lat, lon):
                report.reject(
                    geo.line,
                    f"coordonnées hors du territoire du département {row.department}"
                    f" ({lat:.4f}, {lon:.4f})",
                    row.finess,
                )
                continue
            row.lat, row.lon = lat, lon
    report.located_by_commune = sum(1 for r in rows if r.lat is None)


# --------------------------------------------------------------------------- writing

_STAGE = """
CREATE TEMP TABLE finess_stage (
    finess text PRIMARY KEY, finess_ej text, name text, category text, department text,
    commune text, address text, postal_code text, tarif_authority text,
    lat double precision, lon double precision,
    unit_name text, age_min_months smallint, age_max_months smallint, sexes text[],
    timings text[], publics text[], formulas text[]
) ON COMMIT DROP
"""
_STAGE_COLUMNS = (
    "finess",
    "finess_ej",
    "name",
    "category",
    "department",
    "commune",
    "address",
    "postal_code",
    "tarif_authority",
    "lat",
    "lon",
    "unit_name",
    "age_min_months",
    "age_max_months",
    "sexes",
    "timings",
    "publics",
    "formulas",
)

# The point: the extract's when it has one; else the point already known for an
# establishment located at its address (registered through the API); else its commune's.
_MERGE = f"""
WITH input AS (
    SELECT st.*,
           CASE WHEN st.lat IS NOT NULL
                     THEN ST_SetSRID(ST_MakePoint(st.lon, st.lat), 4326)::geography
                WHEN e.location_precision = 'address' THEN e.location
                ELSE c.location END AS point,
           CASE WHEN st.lat IS NOT NULL OR e.location_precision = 'address' THEN 'address'
                ELSE 'commune' END AS precision
      FROM finess_stage st
      JOIN communes c ON c.insee = st.commune
      LEFT JOIN structures e ON e.finess = st.finess
), merged AS (
    INSERT INTO structures AS s
           (finess, finess_ej, name, category, department, commune, address, postal_code,
            tarif_authority, location, location_precision, imported_at)
    SELECT finess, finess_ej, name, category, department, commune, address, postal_code,
           tarif_authority, point, precision, now()
      FROM input
    ON CONFLICT (finess) DO UPDATE
       SET finess_ej = EXCLUDED.finess_ej, name = EXCLUDED.name,
           category = EXCLUDED.category, department = EXCLUDED.department,
           commune = EXCLUDED.commune, address = EXCLUDED.address,
           postal_code = EXCLUDED.postal_code, tarif_authority = EXCLUDED.tarif_authority,
           location = EXCLUDED.location, location_precision = EXCLUDED.location_precision,
           imported_at = EXCLUDED.imported_at
     WHERE (s.finess_ej, s.name, s.category, s.department, s.commune, s.address,
            s.postal_code, s.tarif_authority, s.location_precision, ST_AsBinary(s.location))
           IS DISTINCT FROM
           (EXCLUDED.finess_ej, EXCLUDED.name, EXCLUDED.category, EXCLUDED.department,
            EXCLUDED.commune, EXCLUDED.address, EXCLUDED.postal_code,
            EXCLUDED.tarif_authority, EXCLUDED.location_precision,
            ST_AsBinary(EXCLUDED.location))
    RETURNING s.id, s.finess, s.category, s.department, s.commune, s.location,
              (s.xmax = 0) AS inserted
), moved AS (
    -- Snapshots carry their structure's searchable point for the search's KNN index: a
    -- lieu de vie's commune's (api.precision).
    UPDATE capacity_snapshots cs
       SET location = {precision.point_sql("m", "cm")}
      FROM merged m
      JOIN units u ON u.structure_id = m.id
      JOIN communes cm ON cm.insee = m.commune
     WHERE cs.unit_id = u.id AND NOT m.inserted
)
SELECT id, finess, inserted FROM merged
"""

# One default unit for a structure that has none; a default unit follows its category. A
# category without one (236, staged with a NULL unit name) gets none, and a structure
# recategorised to it loses its default unit unless it was declared on or held (as when the
# establishment describes its own units, api/registry/service.py).
_DEFAULT_UNITS = """
WITH target AS (
    SELECT s.id, st.unit_name, st.age_min_months, st.age_max_months, st.sexes, st.timings,
           st.publics, st.formulas
      FROM finess_stage st
      JOIN structures s ON s.finess = st.finess
), created AS (
    -- Silent on every disability profile (0018: neither level) until the establishment says.
    INSERT INTO units (structure_id, name, age_min_months, age_max_months, sexes, timings,
                       publics, formulas, installed, is_default)
    SELECT t.id, t.unit_name, t.age_min_months, t.age_max_months, t.sexes, t.timings,
           t.publics, t.formulas, 0, true
      FROM target t
     WHERE t.unit_name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM units u WHERE u.structure_id = t.id)
    RETURNING 1
), refreshed AS (
    UPDATE units u
       SET name = t.unit_name, age_min_months = t.age_min_months,
           age_max_months = t.age_max_months, sexes = t.sexes, timings = t.timings,
           publics = t.publics, formulas = t.formulas
      FROM target t
     WHERE u.structure_id = t.id AND u.is_default AND t.unit_name IS NOT NULL
       AND (u.name, u.age_min_months, u.age_max_months, u.sexes, u.timings, u.publics,
            u.formulas)
           IS DISTINCT FROM (t.unit_name, t.age_min_months, t.age_max_months, t.sexes,
                             t.timings, t.publics, t.formulas)
    RETURNING 1
), retired AS (
    DELETE FROM units u
     USING target t
     WHERE u.structure_id = t.id AND u.is_default AND t.unit_name IS NULL
       AND NOT EXISTS (SELECT 1 FROM capacity_snapshots cs WHERE cs.unit_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM capacity_declarations cd WHERE cd.unit_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.unit_id = u.id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM created) AS created, (SELECT count(*) FROM refreshed) AS refreshed,
       (SELECT count(*) FROM retired) AS retired
"""


def _record(row: StructureRow) -> tuple[Any, ...]:
    unit = DEFAULT_UNITS.get(row.category)
    if unit is None:  # a placement service (236): no unit, its places are its carers'
        unit_fields: tuple[Any, ...] = (None,) * 7
    else:
        unit_fields = (
            unit.name,
            unit.age_min_months,
            unit.age_max_months,
            list(unit.sexes),
            sorted(unit.timings),
            sorted(unit.publics),
            sorted(unit.formulas),
        )
    return (
        row.finess,
        row.finess_ej,
        row.name,
        row.category,
        row.department,
        row.commune,
        row.address,
        row.postal_code,
        row.tarif_authority,
        row.lat,
        row.lon,
        *unit_fields,
    )


async def _merge(conn: asyncpg.Connection, rows: Sequence[StructureRow]) -> tuple[int, int, int]:
    """Merge rows in one transaction: (inserted, updated, default units created)."""
    async with conn.transaction():
        await conn.execute("DROP TABLE IF EXISTS pg_temp.finess_stage")
        await conn.execute(_STAGE)
        await conn.copy_records_to_table(
            "finess_stage", records=[_record(r) for r in rows], columns=_STAGE_COLUMNS
        )
        merged = await conn.fetch(_MERGE)
        units = await conn.fetchrow(_DEFAULT_UNITS)
        await _emit(conn, merged)
    inserted = sum(1 for m in merged if m["inserted"])
    return inserted, len(merged) - inserted, units["created"]


# What the events of a batch say of each structure, once its default unit is in place.
_EVENT_ROWS = """
SELECT s.id, s.finess, s.category, s.department, s.authority, count(u.id) AS units
  FROM structures s
  LEFT JOIN units u ON u.structure_id = s.id
 WHERE s.id = ANY($1::uuid[])
 GROUP BY s.id
"""


async def _emit(conn: asyncpg.Connection, merged: Sequence[asyncpg.Record]) -> None:
    """``structure.created`` / ``structure.updated`` for each structure the batch wrote, in
    its transaction, through the one change path (with NOTIFY, like every writer)."""
    if not merged:
        return
    inserted = {m["id"]: m["inserted"] for m in merged}
    rows = await conn.fetch(_EVENT_ROWS, list(inserted))
    build = {True: events.structure_created, False: events.structure_updated}
    await changes.emit_many(
        conn,
        [
            build[inserted[r["id"]]](
                r["department"],
                str(r["id"]),
                r["finess"],
                r["category"],
                r["units"],
                "finess",
                authority=r["authority"],
            )
            for r in rows
        ],
    )


async def load_referential(conn: asyncpg.Connection) -> tuple[set[str], dict[str, str]]:
    """Department codes and INSEE commune → department, as the database has them."""
    departments = {r["code"] for r in await conn.fetch("SELECT code FROM departments")}
    communes = {
        r["insee"]: r["department"]
        for r in await conn.fetch("SELECT insee, department FROM communes")
    }
    return departments, communes


async def import_extract(
    conn: asyncpg.Connection,
    data: bytes,
    *,
    source_name: str = "extract",
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> ImportReport:
    """Read, validate and merge an extract's bytes; returns the report.

    Batches of ``batch_size`` structures are merged in one transaction each; a batch the
    database refuses is retried row by row (one transaction each) and only the faulty rows
    are reported, so a structure is always written whole or not at all.
    """
    start = time.perf_counter()
    report = ImportReport()
    departments, communes = await load_referential(conn)
    show = progress and data.count(b"\n") >= 5_000
    bar = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed:>9,}/{task.total:<9,}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    with bar:
        reading = bar.add_task("lecture de l'extrait", total=data.count(b"\n") + 1)
        rows, report = read_extract(
            data, departments, communes, report, lambda n: bar.advance(reading, n)
        )
        bar.update(reading, completed=data.count(b"\n") + 1)
        writing = bar.add_task("écriture", total=len(rows))
        for i in range(0, len(rows), batch_size):
            batch = rows[i : i + batch_size]
            try:
                inserted, updated, units = await _merge(conn, batch)
            except asyncpg.PostgresError:
                inserted = updated = units = 0
                for row in batch:
                    try:
                        one = await _merge(conn, [row])
                    except asyncpg.PostgresError as exc:
                        report.reject(
                            row.line, f"refusée par la base : {exc.__class__.__name__}", row.finess
                        )
                        continue
                    inserted, updated, units = inserted + one[0], updated + one[1], units + one[2]
            report.imported += inserted
            report.updated += updated
            report.default_units += units
            bar.advance(writing, len(batch))
    written = {r.line for r in report.rejected}
    report.unchanged = (
        sum(1 for r in rows if r.line not in written) - report.imported - report.updated
    )
    report.elapsed_seconds = time.perf_counter() - start
    await changes.audit(
        conn, IMPORTER, "finess.import", "finess_extract", source_name[:200], None, report.as_dict()
    )
    return report


async def import_file(
    conn: asyncpg.Connection,
    path: str | Path,
    *,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> ImportReport:
    """Import the extract at ``path`` (the whole file is read at once: ~40 MB nationally)."""
    path = Path(path)
    return await import_extract(
        conn, path.read_bytes(), source_name=path.name, batch_size=batch_size, progress=progress
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m interop.finess_import FILE [--dsn DSN]``."""
    from api.db import connect
    from api.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args(argv)

    async def _run() -> None:
        async with connect(args.dsn or get_settings().database_url) as conn:
            report = await import_file(conn, args.file, batch_size=args.batch_size, progress=True)
        Console().print(report.summary_table())

    asyncio.run(_run())


if __name__ == "__main__":
    main()
