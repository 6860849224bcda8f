"""Typed, cached access to the committed referential in ``geo/data/``.

The CSV files are built by ``python -m geo.build_referential`` and committed, so loading
them needs no network and no database; the API seeds PostgreSQL from the same objects.
Returned mappings are read-only views of a process-wide cache.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

#: Precision levels of a commune's coordinates, best first (see ``build_referential``).
PRECISIONS: tuple[str, ...] = ("geonames", "arrondissement_centroid", "department_centroid")
OVERSEAS_DEPARTMENTS: frozenset[str] = frozenset({"971", "972", "973", "974", "976"})
#: Kinds of competent authority (see ``build_referential``'s docstring for the law).
AUTHORITY_KINDS: tuple[str, ...] = (
    "departement",
    "metropole",
    "collectivite_unique",
    "collectivite_europeenne",
    "ville_departement",
)


@dataclass(frozen=True, slots=True)
class Department:
    """A department (or equivalent collectivity); lat/lon is its population centroid."""

    code: str
    name: str
    region_code: str
    region_name: str
    lat: float
    lon: float

    @property
    def overseas(self) -> bool:
        """True for the five DROM (971–974, 976)."""
        return self.code in OVERSEAS_DEPARTMENTS


@dataclass(frozen=True, slots=True)
class Commune:
    """A current commune. ``precision`` says how trustworthy lat/lon is."""

    insee: str
    name: str
    department: str
    region_code: str
    population: int
    lat: float
    lon: float
    precision: str
    postcodes: tuple[str, ...]
    authority: str
    """Code of the competent authority for child protection (``69M``, ``20R``, ``59``…)."""


@dataclass(frozen=True, slots=True)
class Authority:
    """A collectivity holding the departmental competences (child protection) on its territory.

    Usually one department (same code); ``20R`` (Corse) and ``6AE`` (Alsace) cover two, and
    department 69 is split between ``69M`` (Métropole de Lyon) and ``69D`` (Rhône).
    """

    code: str
    name: str
    kind: str
    departments: tuple[str, ...]


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("geo").joinpath("data", filename).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def load_departments() -> Mapping[str, Department]:
    """The 101 departments keyed by code, in the official order (…, 19, 2A, 2B, 21, …)."""
    return MappingProxyType(
        {
            row["code"]: Department(
                code=row["code"],
                name=row["name"],
                region_code=row["region_code"],
                region_name=row["region_name"],
                lat=float(row["lat"]),
                lon=float(row["lon"]),
            )
            for row in _rows("departments.csv")
        }
    )


@cache
def load_regions() -> Mapping[str, str]:
    """Region names keyed by INSEE region code."""
    return MappingProxyType({row["code"]: row["name"] for row in _rows("regions.csv")})


@cache
def load_communes() -> Mapping[str, Commune]:
    """All current communes of the 101 departments, keyed by INSEE code (about 35,000)."""
    return MappingProxyType(
        {
            row["insee"]: Commune(
                insee=row["insee"],
                name=row["name"],
                department=row["department"],
                region_code=row["region_code"],
                population=int(row["population"]),
                lat=float(row["lat"]),
                lon=float(row["lon"]),
                precision=row["precision"],
                postcodes=tuple(row["postcodes"].split()),
                authority=row["authority"],
            )
            for row in _rows("communes.csv")
        }
    )


@cache
def load_authorities() -> Mapping[str, Authority]:
    """The competent authorities keyed by code, in department order (…, 66, 6AE, 69D, 69M, …)."""
    return MappingProxyType(
        {
            row["code"]: Authority(
                code=row["code"],
                name=row["name"],
                kind=row["kind"],
                departments=tuple(row["departments"].split()),
            )
            for row in _rows("authorities.csv")
        }
    )


def authority_of_commune(insee: str) -> str | None:
    """Code of the commune's competent authority; None for an unknown INSEE code."""
    commune = load_communes().get(insee)
    return commune.authority if commune is not None else None


@cache
def _department_authorities() -> Mapping[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for authority in load_authorities().values():
        for department in authority.departments:
            found.setdefault(department, []).append(authority.code)
    return MappingProxyType({code: tuple(sorted(codes)) for code, codes in found.items()})


def authorities_of_department(code: str) -> tuple[str, ...]:
    """Codes of the authorities competent in department ``code``, sorted.

    One for every department but 69 (``('69D', '69M')``); ``'2A'`` gives ``('20R',)``.
    Empty for an unknown department code.
    """
    return _department_authorities().get(code, ())


@cache
def department_codes() -> tuple[str, ...]:
    """The 101 department codes in the official order."""
    return tuple(load_departments())


@cache
def _neighbour_map() -> Mapping[str, frozenset[str]]:
    pairs: dict[str, set[str]] = {code: set() for code in department_codes()}
    for row in _rows("neighbours.csv"):
        pairs[row["department"]].add(row["neighbour"])
    return MappingProxyType({code: frozenset(found) for code, found in pairs.items()})


def neighbours(code: str) -> set[str]:
    """Departments adjacent to ``code`` (empty for overseas); KeyError if unknown."""
    found = _neighbour_map().get(code)
    if found is None:
        raise KeyError(f"unknown department code {code!r}")
    return set(found)


def is_valid_department(code: str) -> bool:
    """True for one of the 101 department codes (``2A``/``2B``, not ``20`` nor ``69M``)."""
    return code in load_departments()
