"""The synthetic dataset under construction: the referential it is drawn over, its rows.

``Department``/``Commune`` are the referential as read from the database; ``Generated``
collects the rows ready for COPY and the figures of the summary. Kept apart from the
generators (``seed.structures``, ``seed.carers``) and from ``seed.national``, which reads
the referential, loads the rows and reports, so that each of them imports it alone.
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

#: Advances a named progress bar by one (``seed.national`` passes a no-op when it is off).
Advance = Callable[[str], None]

#: A declaration older than this is stale (mirrors the default of
#: ``api.settings.Settings.stale_after_days``; the seed does not read the settings).
STALE_AFTER_DAYS = 7
#: ``source`` and ``declared_by`` of every seeded declaration.
SOURCE = "seed"
DECLARED_BY = "seed"


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune of the referential: where structures and carers are placed."""

    insee: str
    name: str
    lat: float
    lon: float
    population: int


@dataclass(slots=True)
class Department:
    """A department, its communes (by INSEE code) and population; caches commune weights."""

    code: str
    name: str
    communes: list[Commune]
    population: int
    cum_weights: dict[float, list[float]] = field(default_factory=dict)

    def pick_commune(self, rng: random.Random, exponent: float = 1.0) -> Commune:
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


@dataclass(slots=True)
class Counts:
    """The places of one capacity snapshot (or a running total of them)."""

    installed: int = 0
    occupied: int = 0
    reserved: int = 0
    closed: int = 0
    available: int = 0
    additional: int = 0


@dataclass
class Generated:
    """Rows ready for COPY plus the figures of the summary."""

    structures: list[tuple[object, ...]] = field(default_factory=list)
    units: list[tuple[object, ...]] = field(default_factory=list)
    snapshots: list[tuple[object, ...]] = field(default_factory=list)
    declarations: list[tuple[object, ...]] = field(default_factory=list)
    carers: list[tuple[object, ...]] = field(default_factory=list)
    carer_declarations: list[tuple[object, ...]] = field(default_factory=list)
    by_category: Counter[str] = field(default_factory=Counter)
    units_with_profiles: int = 0
    unit_totals: Counts = field(default_factory=Counts)
    carers_active: int = 0
    carer_places: int = 0
    carer_available: int = 0
    stale: int = 0
    very_stale: int = 0
    dept_installed: Counter[str] = field(default_factory=Counter)
    dept_available: Counter[str] = field(default_factory=Counter)
    #: Per department, the placement services (FINESS 236) drawn: (id, name, FINESS); the
    #: carers they employ reference them (``foster_carers.employer_structure``, by FINESS).
    placement_services: defaultdict[str, list[tuple[uuid.UUID, str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: Carers employed by a placement service, and the agrément places of the active ones.
    service_carers: int = 0
    service_carer_places: int = 0

    def note_age(self, age: timedelta) -> None:
        """Count a declaration of this age in the stale figures of the summary."""
        if age > timedelta(days=STALE_AFTER_DAYS):
            self.stale += 1
        if age > timedelta(days=30):
            self.very_stale += 1
