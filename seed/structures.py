"""Establishments of the synthetic dataset: structures, their units and their capacity.

How many structures of each FINESS category and where (``CATEGORIES``), how they are named,
which units they have (the table of ``seed.unit_rules``, drawn by ``units_for``) and the
current and forecast capacity of each unit. ``seed.national`` calls
``generate_structures`` with its structures stream.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from geo.finess import OVERSEAS_FINESS_PREFIX, finess_check_key, make_finess
from matching.vocabulary import (
    UNDER_3_CATEGORIES,
    UNDER_3_MAX_AGE_MONTHS,
    Formula,
    Public,
    Timing,
    legacy_offer_sets,
    years_to_months,
)
from seed.dataset import DECLARED_BY, SOURCE, Advance, Commune, Counts, Department, Generated
from seed.draws import (
    allocate,
    binomial,
    choose,
    declared_offset,
    draw_modes,
    draw_profiles,
    draw_uuid,
    jitter,
    split_levels,
)
from seed.unit_rules import LAST, NO_UNITS, UNIT_KINDS, UNIT_MIXES, UnitKind, UnitMix

#: Maximal distance between a structure and the centre of its commune.
STRUCTURE_JITTER_KM = 1.98
#: How the profiles a unit states are graded (#16): one in ``UNIT_SPECIALISED_ONE_IN`` is
#: ``specialised`` (a MECS with a unit built for autism…), the others ``with_support``;
#: every profile of an accueil familial spécialisé (238) is specialised, as migration 0018
#: maps the existing ones.
UNIT_SPECIALISED_ONE_IN = 4
SPECIALISED_ONE_IN: dict[str, int] = {"238": 1}
FORECASTS = ("h24", "h48", "d7")


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
    # Its places are its carers' (``seed.carers``): no unit, see ``seed.unit_rules.NO_UNITS``.
    CategoryPlan("236", "Service de placement familial", 80, 0),
    CategoryPlan("172", "Pouponnière", 60, 0),
    CategoryPlan("176", "Village d'enfants", 60, 0, commune_exponent=0.8),
    CategoryPlan("241", "Établissement de placement PJJ", 60, 0),
    CategoryPlan("378", "Établissement expérimental", 40, 0),
    CategoryPlan("238", "Centre d'accueil familial spécialisé", 30, 0, commune_exponent=0.8),
)


# Occupancy is a little lower or higher by category (foyers are the most saturated); none
# for 236, whose places are its carers'.
CATEGORY_FREE_FACTOR: dict[str, float] = {
    "175": 0.6,
    "172": 0.9,
    "166": 1.1,
    "177": 1.0,
    "462": 1.1,
    "176": 0.9,
    "238": 1.0,
    "241": 1.3,
    "378": 1.2,
}


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
class UnitSpec:
    """One unit of a structure as drawn, before its id and capacity: ages in months and the
    needs vocabulary (``seed.unit_rules`` reads as a placement officer says it — bands in
    years, care modes of old —; ``units_for`` maps it: ``vocabulary.years_to_months``,
    ``legacy_offer_sets``, and a pouponnière's or centre parental's band ends at 35 months)."""

    name: str
    age_min_months: int
    age_max_months: int
    sexes: tuple[str, ...]
    timings: tuple[str, ...]
    publics: tuple[str, ...]
    formulas: tuple[str, ...]
    profiles: tuple[str, ...]
    installed: int


def _de(name: str) -> str:
    """French "de" before a place name: d'Annecy, du Mans, des Sables-d'Olonne, de Lyon."""
    if name.startswith("Le "):
        return "du " + name[3:]
    if name.startswith("Les "):
        return "des " + name[4:]
    if name[:1] in "AEIOUYÉÈÊÎÔÂ":
        return "d'" + name
    return "de " + name


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


class Serials:
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


# ---------------------------------------------------------------------- units


def _sexes(rng: random.Random, single_sex: float, male_share: float = 0.6) -> tuple[str, ...]:
    """One sex with probability ``single_sex`` (boys with ``male_share``), else both."""
    if rng.random() < single_sex:
        return ("M",) if rng.random() < male_share else ("F",)
    return ("F", "M")


def _unit_kinds(rng: random.Random, mix: UnitMix) -> list[str]:
    """The kinds of one structure's units, drawn as its category's mix says."""
    if mix.layout:
        kinds = list(mix.layout)
        if mix.instead is not None and rng.random() < mix.instead[0]:
            kinds = list(mix.instead[1])
    else:
        kinds = [choose(rng, mix.kinds) for _ in range(choose(rng, mix.counts))]
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
    rng: random.Random,
    category: str,
    kind: UnitKind,
    label: str,
    unit_names: Sequence[str],
    position: int,
) -> UnitSpec:
    """One unit of ``kind``, its values drawn in the kind's order (see ``seed.unit_rules``)."""
    sexes: tuple[str, ...] = ("F", "M")
    name, ages, modes = label, kind.ages[0], kind.modes
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
            modes = draw_modes(rng, kind.modes, dict(kind.extra_modes))
            if kind.jeune_majeur_to_21 and ages[1] == 21:
                modes = (*modes, "jeune_majeur")
        elif step == "profiles":
            profiles = draw_profiles(rng, kind.profiles)
        elif step == "places":
            places = rng.randint(*kind.places)
    low, high = years_to_months(ages[0], ages[1])
    if category in UNDER_3_CATEGORIES:
        high = min(high, UNDER_3_MAX_AGE_MONTHS)
    timings, publics, formulas = legacy_offer_sets(modes)
    return UnitSpec(
        name,
        low,
        high,
        sexes,
        tuple(t.value for t in Timing if t in timings),
        tuple(p.value for p in Public if p in publics),
        tuple(f.value for f in Formula if f in formulas),
        profiles,
        places,
    )


def units_for(rng: random.Random, category: str) -> list[UnitSpec]:
    """The units of one structure, from its category's rows in ``seed.unit_rules``.

    None, and nothing drawn, for a category of ``NO_UNITS``: a service de placement
    familial's places are those of the carers it employs (``seed.carers``), so units at its
    office would count them twice and propose places where no child lives.
    """
    if category in NO_UNITS:
        return []
    unit_names = rng.sample(_UNIT_NAMES, 6)
    mix = UNIT_MIXES[category]
    return [
        _unit(
            rng,
            category,
            UNIT_KINDS[key],
            mix.first_name if position == 0 and mix.first_name else UNIT_KINDS[key].name,
            unit_names,
            position,
        )
        for position, key in enumerate(_unit_kinds(rng, mix))
    ]


# ------------------------------------------------------------------- capacity


def _current_counts(rng: random.Random, installed: int, free_rate: float) -> Counts:
    """Current snapshot of a unit; the counts fill exactly installed + additional."""
    closed = 0
    if installed > 1 and rng.random() < 0.05:
        closed = min(installed - 1, rng.randint(1, max(1, installed // 4)))
    open_places = installed - closed
    available = binomial(rng, open_places, free_rate)
    reserved = 1 if open_places - available >= 1 and rng.random() < 0.06 else 0
    # Over capacity ("supplémentaire") happens where the pressure is high.
    additional = 1 if rng.random() < max(0.0, 0.06 - free_rate) else 0
    occupied = open_places - available - reserved + additional
    return Counts(installed, occupied, reserved, closed, available, additional)


def _forecasts(rng: random.Random, current: Counts) -> dict[str, Counts]:
    """h24/h48/d7: the reserved child arrives, a few planned exits free places."""
    forecasts: dict[str, Counts] = {}
    exits = 0
    for temporality, p_exit in zip(FORECASTS, (0.01, 0.015, 0.04), strict=True):
        occupied_now = current.occupied + current.reserved - exits
        exits += binomial(rng, occupied_now, p_exit)
        forecasts[temporality] = Counts(
            installed=current.installed,
            occupied=current.occupied + current.reserved - exits,
            reserved=0,
            closed=current.closed,
            available=current.available + exits,
            additional=current.additional,
        )
    return forecasts


# ----------------------------------------------------------------- generation


def draw_associations(
    rng: random.Random, dept: Department, serials: Serials
) -> list[tuple[str, str]]:
    """Managing bodies (name, FINESS juridique) of a department's non-public structures."""
    count = max(2, min(12, round(dept.population / 150_000)))
    names = rng.sample(_ASSOCIATIONS, min(count, len(_ASSOCIATIONS)))
    return [(f"Association {name}", _finess(dept.code, serials.next(dept.code))) for name in names]


def _structure_name(
    rng: random.Random, category: str, dept: Department, commune: Commune, first: bool
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
    dept: Department,
    commune: Commune,
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


def generate_structures(
    rng: random.Random,
    departments: list[Department],
    scale: float,
    free_rates: dict[str, float],
    associations: dict[str, list[tuple[str, str]]],
    serials: Serials,
    now: datetime,
    out: Generated,
    advance: Advance,
) -> None:
    """Structures, their units and capacity snapshots/declarations."""
    totals: dict[str, list[int]] = {}
    for plan in CATEGORIES:
        minimum = plan.minimum if plan.minimum_fixed else math.floor(plan.minimum * scale)
        noise = [rng.lognormvariate(0, 0.3) for _ in departments]
        weights = [d.population * n for d, n in zip(departments, noise, strict=True)]
        total = max(round(plan.national * scale), minimum * len(departments))
        totals[plan.code] = allocate(total, weights, minimum)

    cd_ej = {d.code: _finess(d.code, serials.next(d.code)) for d in departments}
    pjj_ej = {d.code: _finess(d.code, serials.next(d.code)) for d in departments}
    for di, dept in enumerate(departments):
        names: set[str] = set()
        for plan in CATEGORIES:
            for k in range(totals[plan.code][di]):
                commune = dept.pick_commune(rng, plan.commune_exponent)
                lat, lon = jitter(rng, commune.lat, commune.lon, STRUCTURE_JITTER_KM)
                if plan.code == "175":
                    ej = cd_ej[dept.code]
                elif plan.code == "241":
                    ej = pjj_ej[dept.code]
                else:
                    ej = rng.choice(associations[dept.code])[1]
                structure_id = draw_uuid(rng)
                finess = _finess(dept.code, serials.next(dept.code))
                name = _unique_name(rng, plan.code, dept, commune, k == 0, names)
                out.structures.append(
                    (
                        structure_id,
                        finess,
                        ej,
                        name,
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
                if plan.code in NO_UNITS:
                    out.placement_services[dept.code].append((structure_id, name, finess))
                _add_units(rng, plan.code, dept.code, structure_id, free_rates, now, out)
                advance("structures")


def _add_units(
    rng: random.Random,
    category: str,
    department: str,
    structure_id: uuid.UUID,
    free_rates: dict[str, float],
    now: datetime,
    out: Generated,
) -> None:
    for spec in units_for(rng, category):
        unit_id = draw_uuid(rng)
        specialised, supported = split_levels(
            spec.profiles, unit_id.int, SPECIALISED_ONE_IN.get(category, UNIT_SPECIALISED_ONE_IN)
        )
        out.units.append(
            (
                unit_id,
                structure_id,
                spec.name,
                spec.age_min_months,
                spec.age_max_months,
                list(spec.sexes),
                list(spec.timings),
                list(spec.publics),
                list(spec.formulas),
                specialised,
                supported,
                spec.installed,
            )
        )
        if spec.profiles:
            out.units_with_profiles += 1
        free_rate = free_rates[department] * CATEGORY_FREE_FACTOR[category]
        free_rate *= rng.lognormvariate(0, 0.3)
        current = _current_counts(rng, spec.installed, min(free_rate, 0.5))
        age = declared_offset(rng)
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
