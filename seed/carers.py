"""Assistants familiaux of the synthetic dataset: where they live, what they accept.

About ``NATIONAL_CARERS`` carers at scale 1, spread like the population (a home is the
centre of its commune moved by up to ``CARER_JITTER_KM``), with their agrément, ages, care
modes, status, current free places, their agrément's dates and state (``draw_agrement``)
and employer (their department, or one of its placement services, by FINESS number).
``seed.national`` calls ``generate_carers`` with its carers stream, independent of the
structures' one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from matching.vocabulary import Formula, Public, Timing, legacy_offer_sets, years_to_months
from seed.dataset import DECLARED_BY, SOURCE, Advance, Department, Generated
from seed.draws import (
    allocate,
    binomial,
    declared_offset,
    draw_modes,
    draw_profiles,
    draw_uuid,
    jitter,
    split_levels,
    weighted,
)

#: Maximal distance between a carer's home and the centre of its commune.
CARER_JITTER_KM = 2.97
#: Carers at scale 1 (national order of magnitude of assistants familiaux).
NATIONAL_CARERS = 38_000
#: Carers have a few more free places than establishments, relative to the department.
CARER_FREE_FACTOR = 1.25
#: One profile in ten a carer's agrément states is ``specialised`` (a carer trained for it);
#: the others ``with_support`` (#16, graded).
CARER_SPECIALISED_ONE_IN = 10
#: ``(weight, (age_min, age_max))`` of a carer's agrément.
_CARER_AGES: tuple[tuple[float, tuple[int, int]], ...] = (
    (40, (0, 18)),
    (15, (0, 21)),
    (15, (3, 18)),
    (10, (6, 18)),
    (8, (0, 6)),
    (8, (10, 18)),
    (4, (13, 21)),
)


@dataclass(frozen=True, slots=True)
class Agrement:
    """The agrément as its issuer recorded it (migration 0012's columns)."""

    issued_on: date
    valid_until: date
    state: str
    suspended_from: date | None
    suspension_reason: str | None
    withdrawn_on: date | None
    withdrawal_reason: str | None
    renewal_requested_on: date | None
    derogation_children: int | None
    derogation_reason: str | None
    derogation_until: date | None

    def valid_today(self, today: date) -> bool:
        """What ``places_agrement_valid`` says for today (suspensions here have no end)."""
        return self.state == "valid" and self.issued_on <= today <= self.valid_until

    def row(self) -> tuple[object, ...]:
        return (
            self.issued_on,
            self.valid_until,
            self.state,
            self.suspended_from,
            self.suspension_reason,
            self.withdrawn_on,
            self.withdrawal_reason,
            self.renewal_requested_on,
            self.derogation_children,
            self.derogation_reason,
            self.derogation_until,
        )


#: Share of agréments suspended (CASF L421-6, pending an inquiry) and withdrawn but still
#: on record; and of those past their end whose renewal was not decided yet (expired).
SUSPENDED_SHARE = 0.02
WITHDRAWN_SHARE = 0.004
EXPIRED_SHARE = 0.006


def draw_agrement(rng: random.Random, today: date, capacity: int) -> Agrement:
    """Issued within the last five years (valid five years, CASF L421-3, R421-…), a few
    past their end (renewal pending), a renewal requested for most of those ending within
    six months; a derogation for 4–6 children (CASF L421-5)."""
    x = rng.random()
    if x < EXPIRED_SHARE:
        issued = today - timedelta(days=rng.randint(1827, 1900))
    else:
        issued = today - timedelta(days=rng.randint(0, 1800))
    # As PostgreSQL's ``issued_on + interval '5 years'``: 29 February gives 28 February.
    until = date(issued.year + 5, issued.month, min(issued.day, 28 if issued.month == 2 else 31))
    renewal = None
    if (until - today).days < 183 and rng.random() < 0.6:
        renewal = max(issued, until - timedelta(days=rng.randint(90, 200)))
        renewal = min(renewal, today)
    y = rng.random()
    state, suspended_from, suspension_reason = "valid", None, None
    withdrawn_on, withdrawal_reason = None, None
    if y < SUSPENDED_SHARE:
        state = "suspended"
        suspended_from = today - timedelta(days=rng.randint(0, 100))
        suspension_reason = rng.choice(("enquete_administrative", "situation_de_danger", "sante"))
    elif y < SUSPENDED_SHARE + WITHDRAWN_SHARE:
        state = "withdrawn"
        withdrawn_on = today - timedelta(days=rng.randint(0, 300))
        withdrawal_reason = rng.choice(("conditions_non_remplies", "demande_assistant"))
    derogation = capacity if capacity > 3 else None
    return Agrement(
        issued,
        until,
        state,
        max(suspended_from, issued) if suspended_from else None,
        suspension_reason,
        max(withdrawn_on, issued) if withdrawn_on else None,
        withdrawal_reason,
        renewal,
        derogation,
        rng.choice(("fratrie", "continuite_parcours")) if derogation else None,
        until if derogation else None,
    )


def generate_carers(
    rng: random.Random,
    departments: list[Department],
    scale: float,
    free_rates: dict[str, float],
    now: datetime,
    out: Generated,
    advance: Advance,
) -> None:
    """Assistants familiaux, spread like the population (home = commune + ≤ 3 km).

    About 78 % are employed by their department (the authority that issued the agrément),
    the others by one of the department's placement services (FINESS 236) drawn by
    ``seed.structures`` before (``out.placement_services``); in a department without one,
    every carer is the department's. A placement service's capacity is the sum of its
    carers': it has no unit of its own.
    """
    minimum = max(1, math.floor(20 * scale))
    noise = [rng.lognormvariate(0, 0.3) for _ in departments]
    weights = [d.population * n for d, n in zip(departments, noise, strict=True)]
    total = max(round(NATIONAL_CARERS * scale), minimum * len(departments))
    counts = allocate(total, weights, minimum)
    today = now.date()
    for dept, count in zip(departments, counts, strict=True):
        number = rng.randint(1, 3_000)
        for _ in range(count):
            number += rng.randint(1, 4)
            commune = dept.pick_commune(rng, 0.8)
            lat, lon = jitter(rng, commune.lat, commune.lon, CARER_JITTER_KM)
            x = rng.random()
            if x < 0.01:
                capacity = rng.randint(4, 6)  # derogation
            elif x < 0.11:
                capacity = 1
            elif x < 0.45:
                capacity = 2
            else:
                capacity = 3
            age_min, age_max = weighted(rng, _CARER_AGES)
            modes = draw_modes(rng, ("durable",), {"urgence": 0.12, "sequentiel": 0.18})
            if age_min <= 15 and age_max >= 18 and rng.random() < 0.04:
                modes = (*modes, "mna")
            if age_max == 21 and rng.random() < 0.5:
                modes = (*modes, "jeune_majeur")
            if age_min == 0 and rng.random() < 0.01:
                modes = (*modes, "mere_enfant")
            profiles = draw_profiles(rng, 0.2)
            # Drawn as an agrément of old reads (years, care modes), stored in the needs
            # vocabulary: ages in months, timings / publics / formulas (vocabulary's mapping).
            age_min_months, age_max_months = years_to_months(age_min, age_max)
            timings, publics, formulas = legacy_offer_sets(modes)
            agrement = draw_agrement(rng, today, capacity)
            y = rng.random()
            status_until: date | None = None
            if y < 0.91:
                status = "active"
            else:
                status = "leave"
                status_until = today + timedelta(days=rng.randint(3, 42))
            if status == "active" and agrement.valid_today(today):
                free_rate = free_rates[dept.code] * CARER_FREE_FACTOR * rng.lognormvariate(0, 0.3)
                available = binomial(rng, capacity, min(free_rate, 0.5))
                out.carers_active += 1
                out.carer_places += capacity
                out.carer_available += available
                out.dept_installed[dept.code] += capacity
                out.dept_available[dept.code] += available
            else:
                available = 0
            services = out.placement_services.get(dept.code)
            employer_finess: str | None = None
            if rng.random() >= 0.78 and services:
                _, _, employer_finess = rng.choice(services)
                out.service_carers += 1
                if status == "active" and agrement.valid_today(today):
                    out.service_carer_places += capacity
            age = declared_offset(rng)
            out.note_age(age)
            carer_id = draw_uuid(rng)
            out.carer_declarations.append(
                (carer_id, available, status, status_until, 1, now - age, DECLARED_BY, SOURCE)
            )
            out.carers.append(
                (
                    carer_id,
                    f"AF-{dept.code}-{number:06d}",
                    dept.code,
                    employer_finess,
                    dept.code,
                    commune.insee,
                    lat,
                    lon,
                    capacity,
                    age_min_months,
                    age_max_months,
                    [t.value for t in Timing if t in timings],
                    [p.value for p in Public if p in publics],
                    [f.value for f in Formula if f in formulas],
                    *split_levels(profiles, carer_id.int, CARER_SPECIALISED_ONE_IN),
                    status,
                    status_until,
                    available,
                    1,
                    now - age,
                    DECLARED_BY,
                    *agrement.row(),
                )
            )
            advance("carers")
