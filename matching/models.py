"""Immutable value objects exchanged with the matching library.

Everything is a frozen, slotted dataclass: the library never mutates its inputs, results
can be cached or compared, and the same input always yields equal outputs. Collections
given as lists or sets are normalised (to ``frozenset`` / ``tuple``) on construction, so
callers may pass whatever their JSON or SQL layer produced.

Validation is strict for ``Child`` and ``Need`` (they come from users: a bad code must be
a clear ``ValueError`` the API turns into a 422) and structural only for ``Offer`` (it
comes from the database: an unknown care-mode code there simply never matches, instead
of failing every search).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from matching.vocabulary import (
    DISABILITY_PROFILES,
    DISABILITY_SERVICE_KINDS,
    FORMULAS,
    MAX_AGE_MONTHS,
    PUBLICS,
    TEMPORALITIES,
    TIMINGS,
    URGENCIES,
    AvailableGender,
    Formula,
    OfferKind,
    Sex,
)

_SEXES = frozenset(Sex)
_GENDERS = frozenset(AvailableGender)
_KINDS = frozenset(OfferKind)


def _set(obj: Any, name: str) -> frozenset[str]:
    """Normalise a collection attribute to a frozenset of str (strings stay whole)."""
    value = getattr(obj, name)
    if type(value) is frozenset and all(type(v) is str for v in value):
        return value  # already normal (a shared one, from the database layer): keep it
    if isinstance(value, str):
        value = (value,)
    result = frozenset(str(v) for v in value)
    object.__setattr__(obj, name, result)
    return result


_EARTH_RADIUS_KM: Final = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _check_point(lat: float, lon: float, what: str) -> tuple[float, float]:
    la, lo = float(lat), float(lon)
    if not (math.isfinite(la) and math.isfinite(lo) and -90 <= la <= 90 and -180 <= lo <= 180):
        raise ValueError(f"{what} : coordonnées invalides ({lat!r}, {lon!r})")
    return la, lo


@dataclass(frozen=True, slots=True)
class Point:
    """A public point: a commune's centroid, a structure's location, a carer's public point
    (their commune's) — never a home. The school's commune is one (``Need.school``)."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        la, lo = _check_point(self.lat, self.lon, "point")
        object.__setattr__(self, "lat", la)
        object.__setattr__(self, "lon", lo)


@dataclass(frozen=True, slots=True)
class DisabilityService:
    """The service that follows a child with a disability (IME, SESSAD, DITEP…: codes of
    ``DisabilityServiceKind``) at its commune's public point: the offer's distance to it is
    scored (``score.WEIGHTS['disability_service']``) — the child keeps going there."""

    kind: str
    commune: str
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if self.kind not in DISABILITY_SERVICE_KINDS:
            raise ValueError(f"type de service inconnu : {self.kind!r}")
        la, lo = _check_point(self.lat, self.lon, "service du handicap")
        object.__setattr__(self, "lat", la)
        object.__setattr__(self, "lon", lo)


@dataclass(frozen=True, slots=True)
class Child:
    """One child of a request: only what matching needs, nothing identifying.

    ``age_months`` is the age in completed months (0 … 21 years 11 months: jeunes majeurs
    are followed up to 21): a pouponnière takes a child of 34 months, not one of 37, which
    whole years could not tell apart. ``expected``: the child a parent is expecting
    (``Need.parent_expecting``): 0 months, sex unknown (``""``) and not checked.
    ``mdph_notified``: the CDAPH has notified a decision for the child (MDPH, CASF L241-6);
    None when not known. ``disability_service``: the service that follows the child. Both
    say something of a profile: a notification or a service without one is a ``ValueError``.
    """

    age_months: int
    sex: str
    disability_profiles: frozenset[str] = frozenset()
    mdph_notified: bool | None = None
    disability_service: DisabilityService | None = None
    expected: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.age_months, bool) or not isinstance(self.age_months, int):
            raise ValueError(f"âge invalide : {self.age_months!r} (entier de mois attendu)")
        if not 0 <= self.age_months <= MAX_AGE_MONTHS:
            raise ValueError(
                f"âge hors bornes : {self.age_months} mois (de 0 à {MAX_AGE_MONTHS} mois)"
            )
        if self.expected:
            if self.age_months != 0:
                raise ValueError("un enfant attendu a 0 mois")
        elif self.sex not in _SEXES:
            raise ValueError(f"sexe invalide : {self.sex!r} (attendu « F » ou « M »)")
        profiles = _set(self, "disability_profiles")
        unknown = profiles - DISABILITY_PROFILES
        if unknown:
            raise ValueError(f"profil de handicap inconnu : {', '.join(sorted(unknown))}")
        if self.disability_service is not None:
            if not isinstance(self.disability_service, DisabilityService):
                raise ValueError("disability_service doit être un DisabilityService")
            if not profiles:
                raise ValueError("un service du handicap suppose un profil de handicap")
        if self.mdph_notified and not profiles:
            raise ValueError("une notification MDPH suppose un profil de handicap")


PLACED_KINDS: Final = frozenset({"unit", "carer", "commune"})


@dataclass(frozen=True, slots=True)
class PlacedSibling:
    """Where a brother or sister of the group already lives (Code civil art. 371-5: ties
    between siblings are kept even when they cannot all be placed together).

    ``kind``: ``unit`` or ``carer`` (``id`` names it: an offer with the same ``(kind, id)``
    places the child *with* that sibling) or ``commune`` (``id`` None). ``lat``/``lon``: the
    public point of that place — a unit's structure, a carer's commune (never the home), a
    commune's centroid. ``structure_id``: a unit's structure (another unit of the same
    establishment is the same place)."""

    kind: str
    commune: str
    lat: float
    lon: float
    id: str | None = None
    structure_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PLACED_KINDS:
            raise ValueError(f"lieu de fratrie inconnu : {self.kind!r} (unit, carer ou commune)")
        if (self.kind == "commune") != (self.id is None):
            raise ValueError("un lieu de fratrie unit/carer a un id, une commune n'en a pas")
        la, lo = _check_point(self.lat, self.lon, "lieu de fratrie")
        object.__setattr__(self, "lat", la)
        object.__setattr__(self, "lon", lo)

    @property
    def key(self) -> tuple[str, str] | None:
        """``(kind, id)`` as an ``Offer.key``, for a unit or carer."""
        return None if self.id is None else (self.kind, self.id)


@dataclass(frozen=True, slots=True)
class Need:
    """What a placement service is looking for. Several children form a sibling group.

    ``origin_department`` is the department of the family / school (used to prefer
    placements in the same department and to mark those outside it).

    ``urgency`` chooses the relaxation ladder (``relaxation.LADDERS``). ``separation_ordered``:
    the judge (or the department) decided the siblings may be placed apart, so a split is
    allowed from the first step and is not a relaxation (Code civil art. 371-5: together
    "unless impossible or the child's interest commands otherwise"). ``min_distance_km``: the
    place must be kept at least that far from the family (art. 375-7: the judge may order the
    place kept from the parents); it then replaces proximity in the score.

    ``school``: the public point of the child's school (its commune), a second origin. The
    ladder's geography stays the family's (``origin_department``, the offers' ``distance_km``:
    art. 375-7, visits); the school's distance is a secondary score criterion only.
    ``siblings_placed``: where brothers and sisters already live (art. 371-5); an offer near
    one of them — or the very unit or carer — scores higher (``score.WEIGHTS``).

    ``timing``, ``public``, ``formula``: the three axes of the need (``vocabulary``), each a
    hard constraint. ``parent_expecting`` (formula ``parent_enfant`` only): a future parent
    (CASF L222-5 4° and L222-5-3: centres parentaux take them in); the need may then have no
    child yet. The expected child is one more child of the group, last, built here
    (``Child(0, "", expected=True)``): it takes one place, must be accepted at 0 months, its
    sex is not checked, and splits and ``unmatched_children`` treat it like any child.
    """

    children: tuple[Child, ...]
    timing: str
    public: str = "mineur"
    formula: str = "enfant"
    parent_expecting: bool = False
    urgency: str = "days"
    origin_department: str | None = None
    separation_ordered: bool = False
    min_distance_km: float | None = None
    school: Point | None = None
    siblings_placed: tuple[PlacedSibling, ...] = ()

    def __post_init__(self) -> None:
        placed = tuple(self.siblings_placed)
        if not all(isinstance(p, PlacedSibling) for p in placed):
            raise ValueError("siblings_placed doit contenir des PlacedSibling")
        object.__setattr__(self, "siblings_placed", placed)
        if self.school is not None and not isinstance(self.school, Point):
            raise ValueError("school doit être un Point")
        children = tuple(self.children)
        if not all(isinstance(c, Child) for c in children):
            raise ValueError("children doit contenir des Child")
        if self.timing not in TIMINGS:
            raise ValueError(f"temporalité d'accueil inconnue : {self.timing!r}")
        if self.public not in PUBLICS:
            raise ValueError(f"public inconnu : {self.public!r}")
        if self.formula not in FORMULAS:
            raise ValueError(f"formule inconnue : {self.formula!r}")
        if self.parent_expecting:
            if self.formula != Formula.PARENT_ENFANT:
                raise ValueError("parent_expecting n'est possible qu'en formule parent_enfant")
            if not any(c.expected for c in children):
                children = (*children, Child(0, "", expected=True))
        elif any(c.expected for c in children):
            raise ValueError("un enfant attendu suppose parent_expecting")
        object.__setattr__(self, "children", children)
        if not children:
            raise ValueError("au moins un enfant est requis")
        if self.urgency not in URGENCIES:
            raise ValueError(f"urgence inconnue : {self.urgency!r}")
        if self.min_distance_km is not None:
            d = float(self.min_distance_km)
            if not math.isfinite(d) or d < 0:
                raise ValueError(f"distance minimale invalide : {self.min_distance_km!r}")
            object.__setattr__(self, "min_distance_km", d)

    @property
    def size(self) -> int:
        """Number of places the whole group takes (the expected child's included)."""
        return len(self.children)


@dataclass(frozen=True, slots=True)
class Offer:
    """A candidate place holder, as the database layer retrieved it for one need.

    ``distance_km`` is measured from that need's origin (so an ``Offer`` belongs to one
    search). ``free_places`` is the count for this offer's ``temporality``.
    ``category`` is the FINESS category of the structure (``"172"`` pouponnière…),
    ``None`` for carers. ``lat``/``lon`` are optional and only used to measure how far
    apart split siblings would be; for carers pass the commune centroid, never the home.
    """

    kind: str
    id: str
    department: str
    commune: str
    distance_km: float
    free_places: int
    age_min_months: int
    age_max_months: int
    sexes: frozenset[str]
    timings: frozenset[str]
    publics: frozenset[str]
    formulas: frozenset[str]
    disability_specialised: frozenset[str] = frozenset()
    """Profiles the offer is built for (``DisabilityLevel.SPECIALISED``)."""
    disability_supported: frozenset[str] = frozenset()
    """Profiles it takes with an outside service's support (``WITH_SUPPORT``); disjoint from
    the specialised ones (a profile in both counts as specialised)."""
    status: str = "active"
    """A carer's: ``active`` or ``leave`` (on leave today: never proposed)."""
    agrement_valid: bool = True
    """A carer's agrément is valid on the day the place is free (units: always True). The
    database layer says it (SQL ``places_agrement_valid``); the library never proposes an
    offer for which it is False (CASF L421-3, L421-6)."""
    declared_age_days: float = 0.0
    temporality: str = "current"
    available_gender: str = "any"
    structure_id: str | None = None
    structure_name: str | None = None
    finess: str | None = None
    category: str | None = None
    lat: float | None = field(default=None, repr=False)
    lon: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"type d'offre inconnu : {self.kind!r} (unit ou carer)")
        d = float(self.distance_km)
        if not math.isfinite(d) or d < 0:
            raise ValueError(f"distance invalide : {self.distance_km!r}")
        object.__setattr__(self, "distance_km", d)
        age_days = float(self.declared_age_days)
        if not math.isfinite(age_days) or age_days < 0:
            raise ValueError(f"ancienneté de déclaration invalide : {self.declared_age_days!r}")
        object.__setattr__(self, "declared_age_days", age_days)
        if self.free_places < 0:
            raise ValueError("free_places doit être ≥ 0")
        if self.age_min_months > self.age_max_months:
            raise ValueError("age_min_months doit être ≤ age_max_months")
        if self.temporality not in TEMPORALITIES:
            raise ValueError(f"temporalité inconnue : {self.temporality!r}")
        if self.available_gender not in _GENDERS:
            raise ValueError(f"genre de capacité inconnu : {self.available_gender!r}")
        if not _set(self, "sexes") <= _SEXES:
            raise ValueError(f"sexes invalides : {sorted(self.sexes)}")
        _set(self, "timings")
        _set(self, "publics")
        _set(self, "formulas")
        specialised = _set(self, "disability_specialised")
        supported = _set(self, "disability_supported")
        if not supported.isdisjoint(specialised):
            object.__setattr__(self, "disability_supported", supported - specialised)

    def seen_from(self, distance_km: float, declared_age_days: float) -> Offer:
        """This offer as another search sees it: its distance from that search's origin and
        its declaration's age at that search's time. Every other field was checked when this
        one was built, so only those two are: a database layer that keeps its offers (the
        search's index of the free offer, #16) builds each once, not once per search."""
        d, age = float(distance_km), float(declared_age_days)
        if not (math.isfinite(d) and d >= 0 and math.isfinite(age) and age >= 0):
            raise ValueError(f"distance ou ancienneté invalide : {distance_km!r}, {age!r}")
        return _moved(self, d, age)

    @property
    def disability_profiles(self) -> frozenset[str]:
        """Every profile the offer has a word on, whatever the level."""
        return self.disability_specialised | self.disability_supported

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the place holder across steps and searches: ``(kind, id)``."""
        return (self.kind, self.id)


def _mover() -> Any:
    """``Offer.seen_from``'s copy: every slot set through its descriptor, unrolled (as
    ``dataclasses`` writes ``__init__``), the distance and age replaced — a fifth of the
    cost of building an offer (measured: 3.5 vs 20 µs; a search builds hundreds, #16)."""
    moved = ("distance_km", "declared_age_days")
    lines = ["def moved(offer, distance_km, declared_age_days):", "    new = make(Offer)"]
    lines += [f"    set_{n}(new, offer.{n})" for n in Offer.__slots__ if n not in moved]
    lines += [f"    set_{n}(new, {n})" for n in moved] + ["    return new"]
    scope: dict[str, Any] = {"make": object.__new__, "Offer": Offer}
    scope |= {f"set_{n}": getattr(Offer, n).__set__ for n in Offer.__slots__}
    exec("\n".join(lines), scope)  # noqa: S102 — code built from the slots' names only
    return scope["moved"]


_moved: Final = _mover()


@dataclass(frozen=True, slots=True)
class Reason:
    """One line of a proposal's explanation.

    ``contribution`` is what this criterion added to the score (0 for a criterion that
    is only reported, like the hard constraints met); contributions sum to the score.
    """

    criterion: str
    detail: str
    contribution: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """An offer proposed for some children of a need (all of them unless split).

    ``relaxed`` lists, in ladder order, every relaxation this proposal needs: each one
    is a true statement about the offer (outside the requested radius, only free in
    24 h, siblings split…), not merely the step at which the search happened to be.

    ``step`` is the ladder step the proposal ranks at (the first whose scope contains it);
    ``stale``: the declaration is older than the search's ``stale_after_days`` (it ranks
    after the fresh ones of its step); ``option``: the rank of the answer this proposal
    belongs to — the proposals of one split plan share it; ``siblings_distance_km``: for a
    part of a split, how far (at most) the other parts are.
    """

    offer: Offer
    children: tuple[int, ...]
    score: float
    reasons: tuple[Reason, ...]
    relaxed: tuple[str, ...] = ()
    step: str = "none"
    stale: bool = False
    option: int = 0
    siblings_distance_km: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.offer.key


@dataclass(frozen=True)
class SearchResult:
    """Outcome of a search: never silent.

    ``relaxations``: the relaxation steps the search had to apply (ladder order; empty
    when the request as stated was enough). ``tried``: every step whose candidates were
    fetched, the first one included, so an empty answer still says what was attempted.
    ``rejected``: per failed hard constraint, how many fetched offers it excluded —
    the reason behind an empty or short answer. ``unmatched_children``: indices of the
    children no proposal takes (all of them when there is no proposal).
    """

    proposals: list[Proposal]
    relaxations: list[str]
    tried: list[str]
    rejected: dict[str, int] = field(default_factory=dict)
    unmatched_children: list[int] = field(default_factory=list)


def as_children(items: Iterable[Child | dict[str, Any]]) -> tuple[Child, ...]:
    """Build children from dicts shaped like the API payload (convenience for callers):
    ``age_months``, or ``age`` in years (the youngest of that year: ``age * 12``)."""
    out: list[Child] = []
    for item in items:
        if isinstance(item, Child):
            out.append(item)
        else:
            months = item.get("age_months")
            out.append(
                Child(
                    age_months=item["age"] * 12 if months is None else months,
                    sex=item["sex"],
                    disability_profiles=frozenset(item.get("disability_profiles", ())),
                    mdph_notified=item.get("mdph_notified"),
                )
            )
    return tuple(out)
