"""The unit-rule table of the synthetic dataset is consistent (pure, no database).

The table is data read by ``seed.national``; a typo in a kind's key, a draw order missing a
step or a care mode the API does not know would only show up as a broken seed, so they are
checked here, together with what the generated units must respect.
"""

import random
import string

import pytest

from api.codes import CARE_MODES, FORMULAS, PDE_CATEGORIES, PUBLICS, TIMINGS
from seed.structures import CATEGORIES, units_for
from seed.unit_rules import DRAW_ORDER, NO_UNITS, UNIT_KINDS, UNIT_MIXES, UnitMix

pytestmark = pytest.mark.pure

FIELDS = {"name", "number", "small"}


def _referenced(mix: UnitMix) -> set[str]:
    keys = {key for key, _ in mix.kinds} | set(mix.layout)
    keys |= {chance.kind for chance in (*mix.replace, *mix.add)}
    if mix.instead is not None:
        keys |= set(mix.instead[1])
    return keys


def test_every_category_has_a_mix_of_known_kinds() -> None:
    """Every category drawn has a mix, but the placement services (236): no unit at all."""
    assert NO_UNITS == {"236"}
    assert not set(UNIT_MIXES) & NO_UNITS
    assert set(UNIT_MIXES) | NO_UNITS == {plan.code for plan in CATEGORIES} <= set(PDE_CATEGORIES)
    used: set[str] = set()
    for code, mix in UNIT_MIXES.items():
        assert bool(mix.kinds) != bool(mix.layout), code
        assert _referenced(mix) <= set(UNIT_KINDS), code
        used |= _referenced(mix)
    assert used == set(UNIT_KINDS)


def test_every_kind_is_well_formed() -> None:
    for key, kind in UNIT_KINDS.items():
        assert sorted(kind.order) == sorted(DRAW_ORDER), key
        if kind.jeune_majeur_to_21:
            assert kind.order.index("ages") < kind.order.index("modes"), key
        fields = {f for _, f, _, _ in string.Formatter().parse(kind.name) if f}
        assert fields <= FIELDS, key
        assert all(0 <= low < high <= 21 for low, high in kind.ages), key
        assert 0 < kind.places[0] <= kind.places[1], key
        modes = {*kind.modes, *(mode for mode, _ in kind.extra_modes)}
        assert modes <= set(CARE_MODES), key


def test_generated_units_follow_the_table() -> None:
    for code in UNIT_MIXES:
        for i in range(300):
            units = units_for(random.Random(f"{code}:{i}"), code)
            assert 1 <= len(units) <= 6
            for unit in units:
                assert 0 <= unit.age_min_months < unit.age_max_months <= 263
                if code in ("172", "166"):  # children under 3 only
                    assert unit.age_max_months <= 35
                assert unit.installed > 0
                assert set(unit.timings) <= set(TIMINGS) and unit.timings
                assert set(unit.publics) <= set(PUBLICS) and unit.publics
                assert set(unit.formulas) <= set(FORMULAS) and unit.formulas
                assert unit.sexes in (("F",), ("M",), ("F", "M"))


def test_a_placement_service_gets_no_unit_and_draws_nothing() -> None:
    """A service de placement familial's places are its carers': no unit at its office, and
    no draw either (the structures' stream is left as it was for the next structure)."""
    rng = random.Random("236")
    state = rng.getstate()
    assert units_for(rng, "236") == []
    assert rng.getstate() == state
