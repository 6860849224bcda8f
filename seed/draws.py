"""How the synthetic dataset draws its values from a seeded ``random.Random`` stream.

Shared by ``seed.structures`` and ``seed.carers``. Every helper takes the stream it draws
from and nothing else random, so that the same seed gives the same rows; ``allocate`` is
deterministic (no draw at all).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

KM_PER_DEGREE = 111.195
T = TypeVar("T")

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


def draw_uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from the seeded stream (reproducible, unlike ``uuid4()``)."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial draw (``Random.binomialvariate`` only exists from Python 3.12)."""
    if p <= 0 or n <= 0:
        return 0
    return sum(1 for _ in range(n) if rng.random() < p)


def weighted(rng: random.Random, options: Sequence[tuple[float, T]]) -> T:
    """A ``(weight, value)`` option, by one draw walked down the weights."""
    total = sum(w for w, _ in options)
    x = rng.random() * total
    for w, value in options:
        x -= w
        if x < 0:
            return value
    return options[-1][1]


def choose(rng: random.Random, options: Sequence[tuple[T, int]]) -> T:
    """A ``(value, weight)`` option by ``Random.choices``; a single option draws nothing."""
    if len(options) == 1:
        return options[0][0]
    return rng.choices([value for value, _ in options], [weight for _, weight in options])[0]


def jitter(rng: random.Random, lat: float, lon: float, max_km: float) -> tuple[float, float]:
    """A point uniformly drawn in a disc of radius ``max_km`` around (lat, lon)."""
    r = max_km * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    dlat = r * math.cos(theta) / KM_PER_DEGREE
    dlon = r * math.sin(theta) / (KM_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    return lat + dlat, lon + dlon


def allocate(total: int, weights: Sequence[float], minimum: int) -> list[int]:
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


def draw_profiles(rng: random.Random, probability: float) -> tuple[str, ...]:
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


def split_levels(
    profiles: Sequence[str], key: int, specialised_one_in: int
) -> tuple[list[str], list[str]]:
    """``(specialised, supported)`` of the profiles a unit or carer states (#16, graded):
    each profile is ``specialised`` one time in ``specialised_one_in`` (1: all of them — an
    accueil familial spécialisé), else ``with_support``. Deterministic from ``key`` (the row's
    id), so the seeded stream draws nothing more and the rest of the dataset is unchanged."""
    specialised: list[str] = []
    supported: list[str] = []
    for i, profile in enumerate(profiles):
        (specialised if (key + i) % specialised_one_in == 0 else supported).append(profile)
    return specialised, supported


def draw_modes(
    rng: random.Random, base: tuple[str, ...], extra: dict[str, float]
) -> tuple[str, ...]:
    """``base`` plus each of ``extra`` with its probability (one draw per mode not in base)."""
    modes = list(base)
    for mode, probability in extra.items():
        if mode not in modes and rng.random() < probability:
            modes.append(mode)
    return tuple(modes)


def declared_offset(rng: random.Random) -> timedelta:
    """Age of a declaration: mostly within 2 days, ~10 % days or weeks old (some > 30 days)."""
    x = rng.random()
    if x < 0.90:
        seconds = rng.uniform(60, 2 * 86_400)
    elif x < 0.965:
        seconds = rng.uniform(2, 30) * 86_400
    else:
        seconds = rng.uniform(30, 120) * 86_400
    return timedelta(seconds=round(seconds))
