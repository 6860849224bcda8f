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

Run it on its own with ``python -m seed.national --dsn … --seed N --replace``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from geo.finess import OVERSEAS_FINESS_PREFIX, finess_check_key, make_finess
from seed.reference import load_reference
from seed.unit_rules import LAST, UNIT_KINDS, UNIT_MIXES, UnitKind, UnitMix

#: A declaration older than this is stale (mirrors the default of
#: ``api.settings.Settings.stale_after_days``; the seed does not read the settings).
STALE_AFTER_DAYS = 7
#: Maximal distance between a structure and the centre of its commune.
STRUCTURE_JITTER_KM = 1.98
#: Maximal distance between a carer's home and the centre of its commune.
CARER_JITTER_KM = 2.97
#: Carers at scale 1 (national order of magnitude of assistants familiaux).
NATIONAL_CARERS = 38_000
KM_PER_DEGREE = 111.195
T = TypeVar("T")
SOURCE = "seed"
DECLARED_BY = "seed"
OFFER_TABLES = (
    "structures",
    "units",
    "foster_carers",
    "carer_declarations",
    "capacity_declarations",
    "capacity_snapshots",
)
FORECASTS = ("h24", "h48", "d7")


class SeedError(RuntimeError):
    """The seed cannot run on this database as asked (offer already present, no referential)."""


@dataclass(frozen=True, slots=True)
class CategoryPlan:
    """How many structures of a FINESS category, and where.

    ``national`` is the count at scale 1; ``minimum`` per department is scaled too, except
    when ``minimum_fixed`` (every department runs a foyer de l'enfance, whatever the scale).
    ``commune_exponent`` bends the choice of commune: 1 follows the population, lower
    values favour the countryside (lieux de vie are mostly rural).
    """

    code: str
    label: str
    national: int
    minimum: int
    minimum_fixed: bool = False
    commune_exponent: float = 1.0


CATEGORIES: tuple[CategoryPlan, ...] = (
    CategoryPlan("177", "MECS", 1250, 2),
    CategoryPlan("462", "Lieu de vie et d'accueil", 700, 1, commune_exponent=0.5),
    CategoryPlan("175", "Foyer de l'enfance", 115, 1, minimum_fixed=True),
    CategoryPlan("166", "Centre parental", 90, 0),
    CategoryPlan("236", "Service de placement familial", 80, 0),
    CategoryPlan("172", "Pouponnière", 60, 0),
    CategoryPlan("176", "Village d'enfants", 60, 0, commune_exponent=0.8),
    CategoryPlan("241", "Établissement de placement PJJ", 60, 0),
    CategoryPlan("378", "Établissement expérimental", 40, 0),
    CategoryPlan("238", "Centre d'accueil familial spécialisé", 30, 0, commune_exponent=0.8),
)
CATEGORY_LABELS = {plan.code: plan.label for plan in CATEGORIES}

# Weights of disability profiles: TSA and psychic/behavioural troubles dominate in ASE.
PROFILE_WEIGHTS: dict[str, int] = {
    "troubles_psychiques_comportement": 40,
    "tsa": 25,
    "deficience_intellectuelle": 18,
    "soins_techniques": 7,
    "deficience_motrice": 4,
    "deficience_sensorielle": 3,
    "polyhandicap": 3,
}

# Occupancy is a little lower or higher by category (foyers are the most saturated).
CATEGORY_FREE_FACTOR: dict[str, float] = {
    "175": 0.6,
    "172": 0.9,
    "166": 1.1,
    "177": 1.0,
    "462": 1.1,
    "176": 0.9,
    "236": 1.2,
    "238": 1.0,
    "241": 1.3,
    "378": 1.2,
}
CARER_FREE_FACTOR = 1.25

# fmt: off
_MECS_NAMES = (
    "Les Tilleuls", "Les Glycines", "Les Cèdres", "Le Petit Prince", "Les Acacias", "La Roseraie",
    "Les Peupliers", "Le Moulin", "La Passerelle", "L'Escale", "Les Mouettes", "Le Phare",
    "La Source", "Les Hirondelles", "Saint-Joseph", "Sainte-Marie", "Notre-Dame", "La Providence",
    "Les Marronniers", "Le Clos Fleuri", "Les Lilas", "Le Verger", "Les Sapins", "Les Jardins",
    "L'Oasis", "Le Château", "La Colline", "L'Arc-en-ciel", "Les Capucines", "Le Relais",
    "La Clairière", "Les Chênes", "Les Platanes", "Les Alizés", "La Boussole", "L'Envol",
    "Les Coquelicots", "La Ruche", "Les Bruyères", "Les Ormes", "Les Saules", "La Charmille",
    "Le Colombier", "Les Ajoncs", "Les Genêts", "La Pépinière", "Le Tremplin", "Les Mimosas",
    "Le Bon Pasteur", "Saint-Vincent", "Les Iris", "La Maison Blanche", "Le Prieuré",
    "Les Bleuets", "Jean-Baptiste", "Les Érables",
)
_LVA_NAMES = (
    "La Ferme des Possibles", "Le Mas des Oliviers", "La Maison d'Ulysse", "Le Grand Chemin",
    "La Bergerie", "L'Atelier", "Les Trois Chênes", "Le Fil d'Ariane", "La Cabane", "L'Étape",
    "Le Hameau", "Les Jonquilles", "La Grange", "Le Petit Pont", "La Traverse", "Les Racines",
    "Le Nid", "La Bulle d'air", "L'Ancre", "Le Chemin des Écoliers", "La Maison du Bois",
    "Le Champ Libre", "La Longère", "Le Fournil", "Les Sources", "La Cordée", "Le Ruisseau",
    "La Boussole", "L'Olivier", "Le Vieux Puits", "La Fontaine", "Les Hauts Prés",
    "L'Orée du Bois", "Le Jardin d'Émile", "La Chaumière",
)
_SMALL_NAMES = (
    "Les Petits Loups", "Les Poussins", "Les Câlins", "Les Lutins", "Les Petits Pas", "Le Berceau",
    "Les Oursons", "Les Doudous", "Le Cocon", "Les Bambins",
)
_EXPERIMENTAL_NAMES = (
    "Tremplin", "Passerelle", "Cap Avenir", "Horizon", "Parenthèse", "Boussole", "Trajectoires",
    "Rebond", "Pas à Pas", "Alternative", "Escale", "Élan",
)
_ASSOCIATIONS = (
    "Sauvegarde de l'enfance", "Les Chemins de l'enfance", "Horizon Jeunesse", "L'Envol",
    "Accueil et Avenir", "Enfance et Familles", "Grandir Ensemble", "Passerelles",
    "Entraide Jeunesse", "Les Amis de l'enfance", "Les Tournesols", "Avenir Enfance",
    "Le Fil Rouge", "Trait d'Union", "Jeunesse et Avenir", "Familles Solidaires", "Le Toit",
    "La Main Tendue", "Les Jardins de l'enfance", "Action Enfance Solidaire",
)
_UNIT_NAMES = (
    "Les Lucioles", "Les Écureuils", "Les Dauphins", "L'Arche", "Les Étoiles", "Le Tipi",
    "Les Colibris", "Le Chalet", "Les Explorateurs", "La Bulle", "Les Hiboux", "Les Koalas",
    "Le Navire", "Les Comètes", "La Cabane", "Les Pirates", "Les Mésanges", "Le Refuge",
    "Les Cigales", "Le Sémaphore", "Les Castors", "La Maisonnée", "Le Quai", "L'Atoll",
)
_STREETS = (
    "rue Victor-Hugo", "rue de la République", "avenue Jean-Jaurès", "rue Pasteur",
    "chemin des Vignes", "rue des Écoles", "place de l'Église", "allée des Tilleuls",
    "impasse du Moulin", "route de la Forêt", "rue du Général-de-Gaulle", "boulevard Carnot",
    "rue Jules-Ferry", "chemin de la Croix", "rue des Jardins", "avenue de la Gare",
    "rue Saint-Martin", "rue du Château", "rue des Lilas", "route Nationale",
)
# fmt: on


@dataclass(frozen=True, slots=True)
class _Commune:
    insee: str
    name: str
    lat: float
    lon: float
    population: int


@dataclass(slots=True)
class _Department:
    code: str
    name: str
    communes: list[_Commune]
    population: int
    cum_weights: dict[float, list[float]] = field(default_factory=dict)

    def pick_commune(self, rng: random.Random, exponent: float = 1.0) -> _Commune:
        """A commune drawn with weight population**exponent (uniform if all are empty)."""
        cum = self.cum_weights.get(exponent)
        if cum is None:
            weights = [max(c.population, 0) ** exponent for c in self.communes]
            if sum(weights) <= 0:
                weights = [1.0] * len(self.communes)
            cum, total = [], 0.0
            for w in weights:
                total += w
                cum.append(total)
            self.cum_weights[exponent] = cum
        index = bisect.bisect_right(cum, rng.random() * cum[-1])
        return self.communes[min(index, len(self.communes) - 1)]


@dataclass(frozen=True, slots=True)
class _UnitSpec:
    name: str
    age_min: int
    age_max: int
    sexes: tuple[str, ...]
    care_modes: tuple[str, ...]
    profiles: tuple[str, ...]
    installed: int


@dataclass(slots=True)
class _Counts:
    installed: int = 0
    occupied: int = 0
    reserved: int = 0
    closed: int = 0
    available: int = 0
    additional: int = 0


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
        table.add_row("durée", f"{self.elapsed_seconds:.1f} s")
        return table


# --------------------------------------------------------------------------- helpers


def _uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from the seeded stream (reproducible, unlike ``uuid4()``)."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial draw (``Random.binomialvariate`` only exists from Python 3.12)."""
    if p <= 0 or n <= 0:
        return 0
    return sum(1 for _ in range(n) if rng.random() < p)


def _weighted(rng: random.Random, options: Sequence[tuple[float, T]]) -> T:
    total = sum(w for w, _ in options)
    x = rng.random() * total
    for w, value in options:
        x -= w
        if x < 0:
            return value
    return options[-1][1]


def _jitter(rng: random.Random, lat: float, lon: float, max_km: float) -> tuple[float, float]:
    """A point uniformly drawn in a disc of radius ``max_km`` around (lat, lon)."""
    r = max_km * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    dlat = r * math.cos(theta) / KM_PER_DEGREE
    dlon = r * math.sin(theta) / (KM_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    return lat + dlat, lon + dlon


def _de(name: str) -> str:
    """French "de" before a place name: d'Annecy, du Mans, des Sables-d'Olonne, de Lyon."""
    if name.startswith("Le "):
        return "du " + name[3:]
    if name.startswith("Les "):
        return "des " + name[4:]
    if name[:1] in "AEIOUYÉÈÊÎÔÂ":
        return "d'" + name
    return "de " + name


def _allocate(total: int, weights: Sequence[float], minimum: int) -> list[int]:
    """Split ``total`` into integers proportional to ``weights``, each at least ``minimum``.

    Largest remainder method, ties broken by position: deterministic for given weights.
    """
    counts = [minimum] * len(weights)
    rest = total - minimum * len(weights)
    if rest <= 0:
        return counts
    weight_sum = sum(weights)
    shares = [w / weight_sum * rest for w in weights]
    floors = [math.floor(s) for s in shares]
    left = rest - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [c + f for c, f in zip(counts, floors, strict=True)]


def _finess(department: str, serial: int) -> str:
    """A FINESS number that both ``geo.finess.is_valid_finess`` and the schema accept.

    ``make_finess`` prefixes overseas numbers with ``9A``…``9F``, but the ``structures``
    CHECK only admits ``[0-9AB]`` as second character, so ``9C``/``9D``/``9F`` would be
    rejected. Overseas numbers are therefore built like the real ones (``97`` + the last
    digit of the department + 5 digits + Luhn key) until the schema and geo agree.
    """
    if department in OVERSEAS_FINESS_PREFIX:
        body = f"97{department[-1]}{serial:05d}"
        return body + finess_check_key(body)
    return make_finess(department, serial)


class _Serials:
    """Unique FINESS serials per department, drawn at random (numbers look real)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: dict[str, set[int]] = defaultdict(set)

    def next(self, department: str) -> int:
        used = self._used[department]
        # Overseas numbers keep 5 digits for the serial (see ``_finess``).
        top = 99_999 if department in OVERSEAS_FINESS_PREFIX else 999_999
        while True:
            serial = self._rng.randrange(1_000, top)
            if serial not in used:
                used.add(serial)
                return serial


# --------------------------------------------------------------------------- units


def _profiles(rng: random.Random, probability: float) -> tuple[str, ...]:
    """Zero, one or two disability profiles (most units have none)."""
    if rng.random() >= probability:
        return ()
    names = list(PROFILE_WEIGHTS)
    weights = list(PROFILE_WEIGHTS.values())
    first = rng.choices(names, weights)[0]
    if rng.random() < 0.35:
        second = rng.choices(names, weights)[0]
        if second != first:
            return tuple(sorted((first, second)))
    return (first,)


def _sexes(rng: random.Random, single_sex: float, male_share: float = 0.6) -> tuple[str, ...]:
    if rng.random() < single_sex:
        return ("M",) if rng.random() < male_share else ("F",)
    return ("F", "M")


def _modes(rng: random.Random, base: tuple[str, ...], extra: dict[str, float]) -> tuple[str, ...]:
    modes = list(base)
    for mode, probability in extra.items():
        if mode not in modes and rng.random() < probability:
            modes.append(mode)
    return tuple(modes)


def _choose(rng: random.Random, options: Sequence[tuple[T, int]]) -> T:
    """A ``(value, weight)`` option by ``Random.choices``; a single option draws nothing."""
    if len(options) == 1:
        return options[0][0]
    return rng.choices([value for value, _ in options], [weight for _, weight in options])[0]


def _unit_kinds(rng: random.Random, mix: UnitMix) -> list[str]:
    """The kinds of one structure's units, drawn as its category's mix says."""
    if mix.layout:
        kinds = list(mix.layout)
        if mix.instead is not None and rng.random() < mix.instead[0]:
            kinds = list(mix.instead[1])
    else:
        kinds = [_choose(rng, mix.kinds) for _ in range(_choose(rng, mix.counts))]
    for chance in mix.replace:
        if rng.random() < chance.probability:
            kinds[chance.position] = chance.kind
    for chance in mix.add:
        if rng.random() < chance.probability:
            if chance.position == LAST:
                kinds.append(chance.kind)
            else:
                kinds.insert(chance.position, chance.kind)
    return kinds


def _unit(
    rng: random.Random, kind: UnitKind, label: str, unit_names: Sequence[str], position: int
) -> _UnitSpec:
    """One unit of ``kind``, its values drawn in the kind's order (see ``seed.unit_rules``)."""
    name, ages, sexes, modes = label, kind.ages[0], ("F", "M"), kind.modes
    profiles: tuple[str, ...] = ()
    places = kind.places[0]
    for step in kind.order:
        if step == "name":
            small = rng.choice(_SMALL_NAMES) if "{small}" in label else ""
            name = label.format(name=unit_names[position], number=position + 1, small=small)
        elif step == "ages" and len(kind.ages) > 1:
            ages = rng.choice(kind.ages)
        elif step == "sexes" and kind.single_sex:
            sexes = _sexes(rng, kind.single_sex, kind.male_share)
        elif step == "modes":
            modes = _modes(rng, kind.modes, dict(kind.extra_modes))
            if kind.jeune_majeur_to_21 and ages[1] == 21:
                modes = (*modes, "jeune_majeur")
        elif step == "profiles":
            profiles = _profiles(rng, kind.profiles)
        elif step == "places":
            places = rng.randint(*kind.places)
    return _UnitSpec(name, ages[0], ages[1], sexes, modes, profiles, places)


def _units_for(rng: random.Random, category: str) -> list[_UnitSpec]:
    """The units of one structure, from its category's rows in ``seed.unit_rules``."""
    unit_names = rng.sample(_UNIT_NAMES, 6)
    mix = UNIT_MIXES[category]
    return [
        _unit(
            rng,
            UNIT_KINDS[key],
            mix.first_name if position == 0 and mix.first_name else UNIT_KINDS[key].name,
            unit_names,
            position,
        )
        for position, key in enumerate(_unit_kinds(rng, mix))
    ]


# --------------------------------------------------------------------------- capacity


def _declared_offset(rng: random.Random) -> timedelta:
    """Age of a declaration: mostly within 2 days, ~10 % days or weeks old (some > 30 days)."""
    x = rng.random()
    if x < 0.90:
        seconds = rng.uniform(60, 2 * 86_400)
    elif x < 0.965:
        seconds = rng.uniform(2, 30) * 86_400
    else:
        seconds = rng.uniform(30, 120) * 86_400
    return timedelta(seconds=round(seconds))


def _current_counts(rng: random.Random, installed: int, free_rate: float) -> _Counts:
    """Current snapshot of a unit; the counts fill exactly installed + additional."""
    closed = 0
    if installed > 1 and rng.random() < 0.05:
        closed = min(installed - 1, rng.randint(1, max(1, installed // 4)))
    open_places = installed - closed
    available = _binomial(rng, open_places, free_rate)
    reserved = 1 if open_places - available >= 1 and rng.random() < 0.06 else 0
    # Over capacity ("supplémentaire") happens where the pressure is high.
    additional = 1 if rng.random() < max(0.0, 0.06 - free_rate) else 0
    occupied = open_places - available - reserved + additional
    return _Counts(installed, occupied, reserved, closed, available, additional)


def _forecasts(rng: random.Random, current: _Counts) -> dict[str, _Counts]:
    """h24/h48/d7: the reserved child arrives, a few planned exits free places."""
    forecasts: dict[str, _Counts] = {}
    exits = 0
    for temporality, p_exit in zip(FORECASTS, (0.01, 0.015, 0.04), strict=True):
        occupied_now = current.occupied + current.reserved - exits
        exits += _binomial(rng, occupied_now, p_exit)
        forecasts[temporality] = _Counts(
            installed=current.installed,
            occupied=current.occupied + current.reserved - exits,
            reserved=0,
            closed=current.closed,
            available=current.available + exits,
            additional=current.additional,
        )
    return forecasts


# --------------------------------------------------------------------------- generation


@dataclass
class _Generated:
    """Rows ready for COPY plus the figures of the summary."""

    structures: list[tuple[object, ...]] = field(default_factory=list)
    units: list[tuple[object, ...]] = field(default_factory=list)
    snapshots: list[tuple[object, ...]] = field(default_factory=list)
    declarations: list[tuple[object, ...]] = field(default_factory=list)
    carers: list[tuple[object, ...]] = field(default_factory=list)
    carer_declarations: list[tuple[object, ...]] = field(default_factory=list)
    by_category: Counter[str] = field(default_factory=Counter)
    units_with_profiles: int = 0
    unit_totals: _Counts = field(default_factory=_Counts)
    carers_active: int = 0
    carer_places: int = 0
    carer_available: int = 0
    stale: int = 0
    very_stale: int = 0
    dept_installed: Counter[str] = field(default_factory=Counter)
    dept_available: Counter[str] = field(default_factory=Counter)

    def note_age(self, age: timedelta) -> None:
        if age > timedelta(days=STALE_AFTER_DAYS):
            self.stale += 1
        if age > timedelta(days=30):
            self.very_stale += 1


async def _read_referential(conn: asyncpg.Connection) -> list[_Department]:
    """Departments and communes from the database, sorted in Python (collation-proof)."""
    rows = await conn.fetch("SELECT code, name FROM departments")
    if not rows:
        raise SeedError("no department in the database: load the reference data first")
    communes = await conn.fetch(
        "SELECT insee, name, department, population,"
        " ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon FROM communes"
    )
    by_department: dict[str, list[_Commune]] = defaultdict(list)
    for c in sorted(communes, key=lambda r: r["insee"]):
        by_department[c["department"]].append(
            _Commune(c["insee"], c["name"], c["lat"], c["lon"], c["population"])
        )
    departments = []
    for row in sorted(rows, key=lambda r: r["code"]):
        members = by_department.get(row["code"])
        if not members:
            raise SeedError(f"department {row['code']} has no commune: reload the reference data")
        departments.append(
            _Department(row["code"], row["name"], members, sum(c.population for c in members))
        )
    return departments


def _associations(
    rng: random.Random, dept: _Department, serials: _Serials
) -> list[tuple[str, str]]:
    """Managing bodies (name, FINESS juridique) of a department's non-public structures."""
    count = max(2, min(12, round(dept.population / 150_000)))
    names = rng.sample(_ASSOCIATIONS, min(count, len(_ASSOCIATIONS)))
    return [(f"Association {name}", _finess(dept.code, serials.next(dept.code))) for name in names]


def _structure_name(
    rng: random.Random, category: str, dept: _Department, commune: _Commune, first: bool
) -> str:
    if category == "177":
        name = rng.choice(_MECS_NAMES)
        prefix = rng.choices(["MECS", "Maison d'enfants"], [70, 30])[0]
        return f"{prefix} {name}" if rng.random() < 0.7 else f"{prefix} {name} – {commune.name}"
    if category == "462":
        return f"{rng.choices(['Lieu de vie', 'LVA'], [75, 25])[0]} {rng.choice(_LVA_NAMES)}"
    if category == "175":
        if first:
            return f"Foyer départemental de l'enfance – {dept.name}"
        return f"Foyer de l'enfance {_de(commune.name)}"
    if category == "172":
        if rng.random() < 0.6:
            return f"Pouponnière {commune.name}"
        return f"Pouponnière {rng.choice(_SMALL_NAMES)}"
    if category == "176":
        return f"Village d'enfants {_de(commune.name)}"
    if category == "166":
        return rng.choice(["Centre parental", "Centre maternel"]) + f" {_de(commune.name)}"
    if category == "236":
        return f"Service de placement familial {_de(commune.name)}"
    if category == "238":
        return f"Centre d'accueil familial spécialisé {_de(commune.name)}"
    if category == "241":
        return f"EPE {_de(commune.name)}"
    return f"Dispositif expérimental {rng.choice(_EXPERIMENTAL_NAMES)}"


def _unique_name(
    rng: random.Random,
    category: str,
    dept: _Department,
    commune: _Commune,
    first: bool,
    taken: set[str],
) -> str:
    """A structure name not yet used in the department (searches show names, not ids)."""
    for _ in range(5):
        name = _structure_name(rng, category, dept, commune, first)
        if name not in taken:
            break
    else:
        suffix = 2
        while f"{name} {suffix}" in taken:
            suffix += 1
        name = f"{name} {suffix}"
    taken.add(name)
    return name


def _generate_structures(
    rng: random.Random,
    departments: list[_Department],
    scale: float,
    free_rates: dict[str, float],
    associations: dict[str, list[tuple[str, str]]],
    serials: _Serials,
    now: datetime,
    out: _Generated,
    advance: _Advance,
) -> None:
    """Structures, their units and capacity snapshots/declarations."""
    totals: dict[str, list[int]] = {}
    for plan in CATEGORIES:
        minimum = plan.minimum if plan.minimum_fixed else math.floor(plan.minimum * scale)
        noise = [rng.lognormvariate(0, 0.3) for _ in departments]
        weights = [d.population * n for d, n in zip(departments, noise, strict=True)]
        total = max(round(plan.national * scale), minimum * len(departments))
        totals[plan.code] = _allocate(total, weights, minimum)

    cd_ej = {d.code: _finess(d.code, serials.next(d.code)) for d in departments}
    pjj_ej = {d.code: _finess(d.code, serials.next(d.code)) for d in departments}
    for di, dept in enumerate(departments):
        names: set[str] = set()
        for plan in CATEGORIES:
            for k in range(totals[plan.code][di]):
                commune = dept.pick_commune(rng, plan.commune_exponent)
                lat, lon = _jitter(rng, commune.lat, commune.lon, STRUCTURE_JITTER_KM)
                if plan.code == "175":
                    ej = cd_ej[dept.code]
                elif plan.code == "241":
                    ej = pjj_ej[dept.code]
                else:
                    ej = rng.choice(associations[dept.code])[1]
                structure_id = _uuid(rng)
                out.structures.append(
                    (
                        structure_id,
                        _finess(dept.code, serials.next(dept.code)),
                        ej,
                        _unique_name(rng, plan.code, dept, commune, k == 0, names),
                        plan.code,
                        dept.code,
                        commune.insee,
                        f"{rng.randint(1, 120)} {rng.choice(_STREETS)}",
                        lat,
                        lon,
                        "PJJ" if plan.code == "241" else f"CD {dept.code}",
                    )
                )
                out.by_category[plan.code] += 1
                _add_units(rng, plan.code, dept.code, structure_id, free_rates, now, out)
                advance("structures")


def _add_units(
    rng: random.Random,
    category: str,
    department: str,
    structure_id: uuid.UUID,
    free_rates: dict[str, float],
    now: datetime,
    out: _Generated,
) -> None:
    for spec in _units_for(rng, category):
        unit_id = _uuid(rng)
        out.units.append(
            (
                unit_id,
                structure_id,
                spec.name,
                spec.age_min,
                spec.age_max,
                list(spec.sexes),
                list(spec.care_modes),
                list(spec.profiles),
                spec.installed,
            )
        )
        if spec.profiles:
            out.units_with_profiles += 1
        free_rate = free_rates[department] * CATEGORY_FREE_FACTOR[category]
        free_rate *= rng.lognormvariate(0, 0.3)
        current = _current_counts(rng, spec.installed, min(free_rate, 0.5))
        age = _declared_offset(rng)
        out.note_age(age)
        declared_at = now - age
        gender = spec.sexes[0] if len(spec.sexes) == 1 else "any"
        snapshots = {"current": current}
        if rng.random() < 0.5:
            snapshots.update(_forecasts(rng, current))
        for temporality, c in snapshots.items():
            row = (
                unit_id,
                temporality,
                c.installed,
                c.occupied,
                c.reserved,
                c.closed,
                c.available,
                c.additional,
                gender,
                1,
                declared_at,
                DECLARED_BY,
                SOURCE,
            )
            out.snapshots.append(row)
            out.declarations.append(row)
        totals = out.unit_totals
        totals.installed += current.installed
        totals.occupied += current.occupied
        totals.reserved += current.reserved
        totals.closed += current.closed
        totals.available += current.available
        totals.additional += current.additional
        out.dept_installed[department] += current.installed
        out.dept_available[department] += current.available


_CARER_AGES: tuple[tuple[float, tuple[int, int]], ...] = (
    (40, (0, 18)),
    (15, (0, 21)),
    (15, (3, 18)),
    (10, (6, 18)),
    (8, (0, 6)),
    (8, (10, 18)),
    (4, (13, 21)),
)


def _generate_carers(
    rng: random.Random,
    departments: list[_Department],
    scale: float,
    free_rates: dict[str, float],
    associations: dict[str, list[tuple[str, str]]],
    now: datetime,
    out: _Generated,
    advance: _Advance,
) -> None:
    """Assistants familiaux, spread like the population (home = commune + ≤ 3 km)."""
    minimum = max(1, math.floor(20 * scale))
    noise = [rng.lognormvariate(0, 0.3) for _ in departments]
    weights = [d.population * n for d, n in zip(departments, noise, strict=True)]
    total = max(round(NATIONAL_CARERS * scale), minimum * len(departments))
    counts = _allocate(total, weights, minimum)
    today = now.date()
    for dept, count in zip(departments, counts, strict=True):
        number = rng.randint(1, 3_000)
        for _ in range(count):
            number += rng.randint(1, 4)
            commune = dept.pick_commune(rng, 0.8)
            lat, lon = _jitter(rng, commune.lat, commune.lon, CARER_JITTER_KM)
            x = rng.random()
            if x < 0.01:
                capacity = rng.randint(4, 6)  # derogation
            elif x < 0.11:
                capacity = 1
            elif x < 0.45:
                capacity = 2
            else:
                capacity = 3
            age_min, age_max = _weighted(rng, _CARER_AGES)
            modes = _modes(rng, ("durable",), {"urgence": 0.12, "sequentiel": 0.18})
            if age_min <= 15 and age_max >= 18 and rng.random() < 0.04:
                modes = (*modes, "mna")
            if age_max == 21 and rng.random() < 0.5:
                modes = (*modes, "jeune_majeur")
            if age_min == 0 and rng.random() < 0.01:
                modes = (*modes, "mere_enfant")
            profiles = _profiles(rng, 0.2)
            y = rng.random()
            status_until: date | None = None
            if y < 0.90:
                status = "active"
            elif y < 0.98:
                status = "leave"
                status_until = today + timedelta(days=rng.randint(3, 42))
            else:
                status = "suspended"
            if status == "active":
                free_rate = free_rates[dept.code] * CARER_FREE_FACTOR * rng.lognormvariate(0, 0.3)
                available = _binomial(rng, capacity, min(free_rate, 0.5))
                out.carers_active += 1
                out.carer_places += capacity
                out.carer_available += available
                out.dept_installed[dept.code] += capacity
                out.dept_available[dept.code] += available
            else:
                available = 0
            if rng.random() < 0.78:
                employer = f"CD {dept.code}"
            else:
                employer = "SAF " + rng.choice(associations[dept.code])[0]
            age = _declared_offset(rng)
            out.note_age(age)
            carer_id = _uuid(rng)
            out.carer_declarations.append(
                (carer_id, available, status, status_until, 1, now - age, DECLARED_BY, SOURCE)
            )
            out.carers.append(
                (
                    carer_id,
                    f"AF-{dept.code}-{number:06d}",
                    dept.code,
                    employer,
                    dept.code,
                    commune.insee,
                    lat,
                    lon,
                    capacity,
                    age_min,
                    age_max,
                    list(modes),
                    list(profiles),
                    status,
                    status_until,
                    available,
                    1,
                    now - age,
                    DECLARED_BY,
                )
            )
            advance("carers")


# --------------------------------------------------------------------------- loading


_STRUCTURES_STAGE = """
CREATE TEMP TABLE seed_structures_stage (
    id uuid, finess text, finess_ej text, name text, category text, department text,
    commune text, address text, lat double precision, lon double precision,
    tarif_authority text
) ON COMMIT DROP
"""
_CARERS_STAGE = """
CREATE TEMP TABLE seed_carers_stage (
    id uuid, agrement_number text, agrement_department text, employer text,
    department text, commune text, lat double precision, lon double precision,
    agrement_capacity smallint, age_min smallint, age_max smallint, care_modes text[],
    disability_profiles text[], status text, status_until date, available_places smallint,
    version integer, declared_at timestamptz, declared_by text
) ON COMMIT DROP
"""
_STRUCTURE_COLUMNS = (
    "id, finess, finess_ej, name, category, department, commune, address, tarif_authority"
)
_CARER_COLUMNS = (
    "id, agrement_number, agrement_department, employer, department, commune,"
    " agrement_capacity, age_min, age_max, care_modes, disability_profiles, status,"
    " status_until, available_places, version, declared_at, declared_by"
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
    "age_min",
    "age_max",
    "sexes",
    "care_modes",
    "disability_profiles",
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


async def _load(conn: asyncpg.Connection, data: _Generated, advance: _Advance) -> None:
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
        """
        UPDATE capacity_snapshots cs
           SET location = s.location
          FROM units u
          JOIN structures s ON s.id = u.structure_id
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
        f"INSERT INTO foster_carers ({_CARER_COLUMNS}, location)"
        f" SELECT {_CARER_COLUMNS}, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography"
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


# --------------------------------------------------------------------------- progress


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


# --------------------------------------------------------------------------- entry point


async def seed_national(
    conn: asyncpg.Connection,
    seed: int,
    progress: bool = True,
    *,
    scale: float = 1.0,
    replace: bool = False,
    now: datetime | None = None,
) -> Summary:
    """Generate and load the synthetic national offer in one transaction.

    ``scale`` multiplies every national count (0.02 gives a small dataset for tests; the
    per-department minimum of one foyer de l'enfance and one carer always holds). Raises
    SeedError when the offer tables are not empty and ``replace`` is false, or when the
    reference data (departments, communes) has not been loaded.
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
            await conn.execute(f"TRUNCATE {', '.join(OFFER_TABLES)} RESTART IDENTITY CASCADE")
        departments = await _read_referential(conn)

        # Independent streams: changing how carers are drawn leaves structures unchanged.
        rng_tension = random.Random(f"{seed}:tension")
        rng_structures = random.Random(f"{seed}:structures")
        rng_carers = random.Random(f"{seed}:carers")
        # Free-place rate per department: from ~0.4 % (saturated) to ~10 %.
        free_rates = {d.code: 0.004 + 0.10 * rng_tension.betavariate(1.1, 2.0) for d in departments}
        serials = _Serials(rng_structures)
        associations = {d.code: _associations(rng_structures, d, serials) for d in departments}

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
        data = _Generated()
        with _progress(
            progress,
            {
                "structures": ("Établissements et unités", expected_structures),
                "carers": ("Assistants familiaux", expected_carers),
                "load": ("Chargement (COPY)", 6),
            },
        ) as advance:
            _generate_structures(
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
            _generate_carers(
                rng_carers, departments, scale, free_rates, associations, now, data, advance
            )
            await _load(conn, data, advance)

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
        elapsed_seconds=time.perf_counter() - started,
    )


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seed.national", description="Load the synthetic national dataset."
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/places_dev")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--replace", action="store_true", help="truncate the offer first")
    parser.add_argument(
        "--no-reference", action="store_true", help="do not (re)load departments and communes"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> Summary:
    conn = await asyncpg.connect(args.dsn)
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
