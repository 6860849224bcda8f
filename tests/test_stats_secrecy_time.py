"""Statistical secrecy's gaps closed (#18): over time (a change is never published beside a
hidden value) and on refusals (by reason and by category), on hand-computed tables."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.codes import REFUSAL_REASONS
from api.stats import children
from api.stats.secrecy import apply_column, changes

pytestmark = pytest.mark.pure


def test_a_cell_below_five_and_its_complement_in_a_month_column() -> None:
    # Authorities A, B, C (and others at 0): A's 3 is "< 5"; alone hidden, it would be the
    # published total (39) minus the others, so the smallest other count, B's 6, goes too.
    assert apply_column([3, 6, 30]) == [None, None, 30]


def test_the_previous_month_does_not_give_a_hidden_value_away() -> None:
    # Month m − 1: A 7, B 9, C 30, all published (total 46). Month m: A 3 ("< 5"), B 6 (its
    # complement), C 30 (total 39). A change "A: −4" beside A's published 7 would say 3.
    before = [*apply_column([7, 9, 30]), 46]
    now = [*apply_column([3, 6, 30]), 39]
    assert before == [7, 9, 30, 46] and now == [None, None, 30, 39]
    assert changes(before, now) == [None, None, 0, -7]
    # What is published says no more than the month's own column: the hidden changes sum to
    # −7 − 0 = −7, and with A and B's published 7 + 9 = 16 that is A + B = 9 in month m —
    # the total 39 minus C's 30, already known. Neither A nor B comes out alone.
    # Back to published values: the change is published again (both ends are).
    assert changes(now, [*apply_column([8, 6, 30]), 44]) == [None, None, 0, 5]


def test_a_hidden_value_the_month_before_hides_the_change_too() -> None:
    assert changes([None, None, 30], [12, 9, 30]) == [None, None, 0]


published = st.lists(st.one_of(st.none(), st.integers(0, 50)), min_size=1, max_size=8)


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(*[published.map(lambda v: v[:n])] * 2)))
def test_a_change_is_published_only_between_published_values(pair: tuple) -> None:
    before, now = pair
    n = min(len(before), len(now))
    before, now = before[:n], now[:n]
    for b, c, d in zip(before, now, changes(before, now), strict=True):
        if b is None or c is None:
            assert d is None
        else:
            assert d == c - b


def _row(code: str, reasons: dict[str, int], categories: dict[str, int]) -> dict:
    row = children._empty(code)
    row["refusals_by_reason"].update(reasons)
    row["refusals_by_category"] = dict(categories)
    return row


def test_refusals_by_reason_and_by_category_are_suppressed_nationally() -> None:
    rows = {
        "A": _row("A", {"distance": 3, "profil_inadapte": 6}, {"177": 6, "carer": 3}),
        "B": _row(
            "B",
            {"distance": 7, "profil_inadapte": 8, "autre": 20},
            {"177": 15, "carer": 20},
        ),
        "C": _row(
            "C",
            {"distance": 10, "profil_inadapte": 12, "autre": 30},
            {"177": 22, "carer": 30},
        ),
    }
    items = {i["authority"]: i for i in children.national_view(rows)}
    # By reason: A's 3 refusals for distance are "< 5". Row A then hides its smallest other
    # cell, a 0 (pas_de_place_reelle: the first of its zeros); the distance column hides
    # B's 7, the pas_de_place_reelle column B's 0 — then every line hides 0 or 2 cells.
    assert items["A"]["refusals_by_reason"] == {
        "profil_inadapte": 6,
        "pas_de_place_reelle": None,
        "fratrie_non_accueillable": 0,
        "age_hors_agrement": 0,
        "distance": None,
        "securite_du_groupe": 0,
        "autre": 0,
    }
    assert items["B"]["refusals_by_reason"] == {
        "profil_inadapte": 8,
        "pas_de_place_reelle": None,
        "fratrie_non_accueillable": 0,
        "age_hors_agrement": 0,
        "distance": None,
        "securite_du_groupe": 0,
        "autre": 20,
    }
    assert items["C"]["refusals_by_reason"] == rows["C"]["refusals_by_reason"]
    assert list(items["A"]["refusals_by_reason"]) == list(REFUSAL_REASONS)
    # By category: A's 3 refusals of carers are "< 5"; its row's other cell (6) goes, then
    # each column's smallest other count: B's 20 (carer) and B's 15 (177).
    assert items["A"]["refusals_by_category"] == {"177": None, "carer": None}
    assert items["B"]["refusals_by_category"] == {"177": None, "carer": None}
    assert items["C"]["refusals_by_category"] == {"177": 22, "carer": 30}
    assert "refusals_by_reason.distance" in items["A"]["suppressed"]
    assert "refusals_by_category.carer" in items["B"]["suppressed"]
    assert not any(s.startswith("refusals") for s in items["C"]["suppressed"])


def test_every_category_refused_somewhere_is_a_column_of_every_authority() -> None:
    rows = {
        "A": _row("A", {"distance": 9}, {"177": 9}),
        "B": _row("B", {"distance": 6}, {"carer": 6}),
    }
    items = {i["authority"]: i for i in children.national_view(rows)}
    assert items["A"]["refusals_by_category"] == {"177": 9, "carer": 0}
    assert items["B"]["refusals_by_category"] == {"177": 0, "carer": 6}


def test_execution_delays_over_too_few_admissions_are_not_shown_nationally() -> None:
    def row(code: str, admissions: int, median: float, p90: float) -> dict:
        r = children._empty(code)
        r["execution_delay_days"] = {"median": median, "p90": p90, "admissions": admissions}
        return r

    rows = {"A": row("A", 3, 10, 12), "B": row("B", 6, 20, 30), "C": row("C", 12, 15, 25)}
    items = {i["authority"]: i for i in children.national_view(rows)}
    # Admissions: A's 3 is "< 5", its column's complement B's 6. A median over 3 admissions
    # would be one child's delay; a p90 over 6 lies between the two longest.
    assert items["A"]["execution_delay_days"] == {"median": None, "p90": None, "admissions": None}
    assert items["B"]["execution_delay_days"] == {"median": 20, "p90": None, "admissions": None}
    assert items["C"]["execution_delay_days"] == {"median": 15, "p90": 25, "admissions": 12}
    assert "execution_delay_days.admissions" in items["B"]["suppressed"]
