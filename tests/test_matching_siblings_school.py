"""Scenarios of issue #16 (deliverables 3 and 4), as a placement officer would state them:
brothers and sisters already placed (Code civil art. 371-5) and the school as a second
origin (pure library, small fixtures). Each test name is the rule; the docstring the case.

Family distances are from Villeurbanne (69) unless said; the requested radius is 20 km.
Points are communes' centroids (a carer's public point is their commune's, never the home).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import (
    WEIGHTS,
    Child,
    Need,
    Offer,
    PlacedSibling,
    Point,
    haversine_km,
    school_distance_km,
    score,
    score_value,
    search,
)
from matching.score import distance_value
from tests.support.fakes import InMemoryFetch

pytestmark = pytest.mark.pure

BOTH = frozenset({"F", "M"})
NEIGHBOURS = frozenset({"01", "38", "42", "71"})

LYON_3 = (45.7597, 4.8422)
VILLEURBANNE = (45.7719, 4.8902)
VENISSIEUX = (45.6975, 4.8867)
CALUIRE = (45.7952, 4.8473)
VAULX = (45.7787, 4.9216)
GIVORS = (45.5906, 4.7689)


def unit(oid: str, km: float, at: tuple[float, float], **kw: object) -> Offer:
    fields: dict[str, object] = {
        "kind": "unit",
        "id": oid,
        "department": "69",
        "commune": f"c-{oid}",
        "distance_km": km,
        "free_places": 2,
        "age_min_months": 0,
        "age_max_months": 263,
        "sexes": BOTH,
        "timings": frozenset({"durable"}),
        "publics": frozenset({"mineur"}),
        "formulas": frozenset({"enfant"}),
        "category": "177",
        "structure_id": f"s-{oid}",
        "lat": at[0],
        "lon": at[1],
    }
    fields.update(kw)
    return Offer(**fields)  # type: ignore[arg-type]


def carer(oid: str, km: float, at: tuple[float, float], **kw: object) -> Offer:
    return unit(oid, km, at, kind="carer", category=None, structure_id=None, **kw)


def need(*placed: PlacedSibling, school: tuple[float, float] | None = None, **kw: object) -> Need:
    return Need(
        children=(Child(108, "M"),),
        timing="durable",
        origin_department="69",
        school=None if school is None else Point(*school),
        siblings_placed=placed,
        **kw,  # type: ignore[arg-type]
    )


def run(n: Need, pool: list[Offer], limit: int = 10) -> list[str]:
    fetch = InMemoryFetch(pool, n, NEIGHBOURS)
    result = search(n, fetch, limit=limit, max_distance_km=20, neighbours=NEIGHBOURS)
    return [p.offer.id for p in result.proposals]


def reason(n: Need, offer: Offer, criterion: str) -> tuple[str, float]:
    _, reasons = score(n, offer)
    r = next(r for r in reasons if r.criterion == criterion)
    return r.detail, r.contribution


# ------------------------------------------------------------------ siblings placed


def test_the_unit_where_his_sister_lives_comes_before_an_equal_unit() -> None:
    """A boy of 9; his sister already lives at the MECS « Les Tilleuls » in Caluire. Two MECS
    have a place, both 4 km from the family: Les Tilleuls comes first, and says why."""
    sister = PlacedSibling("unit", "69034", *CALUIRE, id="tilleuls", structure_id="s-tilleuls")
    pool = [unit("autre", 4, VENISSIEUX), unit("tilleuls", 4, CALUIRE)]
    n = need(sister)
    assert run(n, pool) == ["tilleuls", "autre"]
    detail, contribution = reason(n, pool[1], "siblings_placed")
    assert detail == "un frère ou une sœur y est déjà accueilli"
    assert contribution == pytest.approx(WEIGHTS["siblings_placed"])


def test_another_unit_of_the_sisters_establishment_counts_as_with_her() -> None:
    """The sister lives in the MECS's « petits » unit; its « grands » unit has a place: same
    establishment, scored as with her."""
    sister = PlacedSibling("unit", "69034", *GIVORS, id="petits", structure_id="s-mecs")
    grands = unit("grands", 9, GIVORS, structure_id="s-mecs")
    detail, contribution = reason(need(sister), grands, "siblings_placed")
    assert detail == "même établissement qu'un frère ou une sœur déjà placé"
    assert contribution == pytest.approx(WEIGHTS["siblings_placed"])


def test_the_carer_who_has_his_brother_comes_before_another_carer() -> None:
    """His brother lives with an assistant familial in Vaulx-en-Velin (recorded with her id and
    commune only). She has a second place; another carer, same family distance, too."""
    brother = PlacedSibling("carer", "69256", *VAULX, id="mme-b")
    pool = [carer("mme-a", 3, VENISSIEUX), carer("mme-b", 3, VAULX)]
    assert run(need(brother), pool) == ["mme-b", "mme-a"]


def test_a_place_near_the_commune_where_a_sibling_lives_beats_a_far_one() -> None:
    """A sister is placed in Givors (commune only known). Two MECS 8 km from the family, one in
    Vénissieux (about 12 km from Givors), one in Caluire (about 23 km): Vénissieux first, and
    each says how far the sister is, in whole km."""
    sister = PlacedSibling("commune", "69091", *GIVORS)
    near, far = unit("venissieux", 8, VENISSIEUX), unit("caluire", 8, CALUIRE)
    n = need(sister)
    assert run(n, [far, near]) == ["venissieux", "caluire"]
    km = round(haversine_km(*GIVORS, *VENISSIEUX))
    assert reason(n, near, "siblings_placed")[0] == (
        f"à {km} km d'un frère ou d'une sœur déjà placé (commune 69091)"
    )
    assert reason(n, near, "siblings_placed")[1] == pytest.approx(
        WEIGHTS["siblings_placed"] * distance_value(km)
    )


def test_the_nearest_of_several_placed_siblings_counts() -> None:
    """Two sisters placed, one in Givors, one with the very carer searched: the carer scores as
    with a sister (the nearest sibling counts)."""
    placed = (
        PlacedSibling("commune", "69091", *GIVORS),
        PlacedSibling("carer", "69256", *VAULX, id="mme-b"),
    )
    offer = carer("mme-b", 3, VAULX)
    assert reason(need(*placed), offer, "siblings_placed")[1] == pytest.approx(
        WEIGHTS["siblings_placed"]
    )


def test_a_sibling_placed_far_away_does_not_widen_the_search() -> None:
    """The sister lives in a MECS 60 km away (beyond the 20 km radius); a MECS 5 km from the
    family has a place now. The family's proximity decides the step (art. 375-7): the near
    MECS first, the sister's only after, with its relaxation stated."""
    sister = PlacedSibling("unit", "42218", 45.43, 4.39, id="loin", structure_id="s-loin")
    pool = [unit("loin", 60, (45.43, 4.39)), unit("pres", 5, VENISSIEUX)]
    n = need(sister)
    fetch = InMemoryFetch(pool, n, NEIGHBOURS)
    result = search(n, fetch, limit=10, max_distance_km=20, neighbours=NEIGHBOURS)
    assert [p.offer.id for p in result.proposals] == ["pres", "loin"]
    assert result.proposals[1].relaxed == ("widen_radius", "neighbour_departments")


def test_without_siblings_placed_or_school_the_score_is_the_family_distance_as_before() -> None:
    """No sibling placed, no school: both criteria are worth the family distance's value, so
    the score is what it was before they existed (weights of distance, school,
    siblings_placed and — no disability service either, #16 deliverable 5 — disability_service
    together: 0.30)."""
    offer = unit("mecs", 12, VENISSIEUX)
    n = need()
    _, reasons = score(n, offer)
    by = {r.criterion: r for r in reasons}
    family = distance_value(12)
    assert by["school"].contribution == pytest.approx(WEIGHTS["school"] * family)
    assert by["siblings_placed"].contribution == pytest.approx(WEIGHTS["siblings_placed"] * family)
    assert by["school"].detail == "école non précisée : compte comme la distance à la famille"
    near = (
        WEIGHTS["distance"]
        + WEIGHTS["school"]
        + WEIGHTS["siblings_placed"]
        + WEIGHTS["disability_service"]
    )
    assert near == pytest.approx(0.30)


# ------------------------------------------------------------------------- school


def test_with_equal_family_distance_the_place_near_the_school_comes_first() -> None:
    """A boy of 9, family in Villeurbanne, school in Lyon 3e. Two MECS 6 km from the family,
    one in Vénissieux (≈ 7 km from the school), one in Caluire (≈ 4 km): Caluire first; each
    shows the school's distance."""
    pool = [unit("autre", 6, VENISSIEUX), unit("pres-ecole", 6, CALUIRE)]
    n = need(school=LYON_3)
    assert run(n, pool) == ["pres-ecole", "autre"]
    km = haversine_km(*LYON_3, *CALUIRE)
    assert school_distance_km(n, pool[1]) == pytest.approx(km)
    assert reason(n, pool[1], "school")[0] == f"école à {km:.1f} km".replace(".", ",")


def test_the_school_never_beats_the_family_proximity_of_the_ladder() -> None:
    """School in Lyon 3e; a MECS next to the school but 30 km from the family (it moved out of
    the radius of the family's home), another 10 km from the family and 25 km from the
    school: the family's radius decides the step, the school only scores within it."""
    next_to_school = unit("ecole", 30, LYON_3)
    family_side = unit("famille", 10, GIVORS)
    n = need(school=LYON_3)
    assert run(n, [next_to_school, family_side]) == ["famille", "ecole"]


def test_a_carers_school_distance_is_in_whole_km() -> None:
    """A carer in Caluire: the distance from the school to her commune's point is whole km,
    as her family distance, so moving the school never locates her closer than her commune."""
    n = need(school=LYON_3)
    offer = carer("mme-c", 6, CALUIRE)
    km = school_distance_km(n, offer)
    assert km == round(haversine_km(*LYON_3, *CALUIRE))
    assert reason(n, offer, "school")[0] == f"école à {km:.0f} km"


def test_a_minimum_distance_from_the_family_leaves_the_school_distance_scored() -> None:
    """The judge ordered the place kept at least 15 km from the parents; the school in Lyon 3e
    still counts: of two places 20 km from the family, the one nearer the school first."""
    n = need(school=LYON_3, min_distance_km=15.0)
    a, b = unit("a", 20, GIVORS), unit("b", 20, CALUIRE)
    assert score_value(n, b) > score_value(n, a)


# ------------------------------------------------------------------------ validation


def test_placed_sibling_is_validated() -> None:
    with pytest.raises(ValueError, match="lieu de fratrie inconnu"):
        PlacedSibling("home", "69123", *LYON_3)
    with pytest.raises(ValueError, match="id"):
        PlacedSibling("commune", "69123", *LYON_3, id="x")
    with pytest.raises(ValueError, match="id"):
        PlacedSibling("unit", "69123", *LYON_3)
    with pytest.raises(ValueError, match="coordonnées"):
        PlacedSibling("commune", "69123", math.nan, 4.0)
    with pytest.raises(ValueError, match="PlacedSibling"):
        Need(children=(Child(108, "M"),), timing="durable", siblings_placed=("69123",))  # type: ignore[arg-type]


# -------------------------------------------------------------------------- property

lat = st.floats(41.0, 51.0)
lon = st.floats(-5.0, 9.0)


@settings(max_examples=200, deadline=None)
@given(
    km=st.floats(0, 900),
    at=st.tuples(lat, lon),
    school=st.none() | st.tuples(lat, lon),
    places=st.lists(st.tuples(lat, lon), max_size=3),
    kind=st.sampled_from(["unit", "carer"]),
)
def test_a_sibling_with_the_offer_never_lowers_its_score_and_reasons_sum(
    km: float,
    at: tuple[float, float],
    school: tuple[float, float] | None,
    places: list[tuple[float, float]],
    kind: str,
) -> None:
    """Whatever the school and the siblings placed: the score is in [0, 1], the reasons'
    contributions sum to it, and recording a sibling at the offer itself never lowers it."""
    offer = unit("o", km, at) if kind == "unit" else carer("o", km, at)
    placed = [PlacedSibling("commune", "00000", *p) for p in places]
    before = need(*placed, school=school)
    value, reasons = score(before, offer)
    assert 0.0 <= value <= 1.0
    assert math.fsum(r.contribution for r in reasons) == pytest.approx(value, abs=1e-9)
    with_it = need(*placed, PlacedSibling(kind, "00000", *at, id="o"), school=school)
    assert score_value(with_it, offer) >= value - 1e-12
