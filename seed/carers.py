"""Assistants familiaux of the synthetic dataset: where they live, what they accept.

About ``NATIONAL_CARERS`` carers at scale 1, spread like the population (a home is the
centre of its commune moved by up to ``CARER_JITTER_KM``), with their agrément, ages, care
modes, status, current free places and employer (their department, or one of its placement
services: ``employer_text``). ``seed.national`` calls ``generate_carers`` with its
carers stream, independent of the structures' one.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

from seed.dataset import DECLARED_BY, SOURCE, Advance, Department, Generated
from seed.draws import (
    allocate,
    binomial,
    declared_offset,
    draw_modes,
    draw_profiles,
    draw_uuid,
    jitter,
    weighted,
)

#: Maximal distance between a carer's home and the centre of its commune.
CARER_JITTER_KM = 2.97
#: Carers at scale 1 (national order of magnitude of assistants familiaux).
NATIONAL_CARERS = 38_000
#: Carers have a few more free places than establishments, relative to the department.
CARER_FREE_FACTOR = 1.25
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


def employer_text(name: str, finess: str) -> str:
    """A placement service's carers' ``employer``: its name and FINESS number, the same text
    for all of them, so that its capacity (the sum of its carers') can be read back.

    The employer is still free text (issue #15 makes it a reference to the department or
    the structure); the FINESS number at the end is what links a carer to its service.
    """
    return f"{name} (FINESS {finess})"


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

    About 78 % are employed by their department (``employer`` = ``CD <department>``), the
    others by one of the department's placement services (FINESS 236) drawn by
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
                available = binomial(rng, capacity, min(free_rate, 0.5))
                out.carers_active += 1
                out.carer_places += capacity
                out.carer_available += available
                out.dept_installed[dept.code] += capacity
                out.dept_available[dept.code] += available
            else:
                available = 0
            services = out.placement_services.get(dept.code)
            if rng.random() < 0.78 or not services:
                employer = f"CD {dept.code}"
            else:
                _, name, finess = rng.choice(services)
                employer = employer_text(name, finess)
                out.service_carers += 1
                if status == "active":
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
