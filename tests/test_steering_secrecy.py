"""Statistical secrecy (api.stats.secrecy): hand-checked tables and properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.stats.flows import national_view
from api.stats.secrecy import apply, primary, suppress

pytestmark = pytest.mark.pure


def test_a_cell_below_five_and_its_secondary_suppression() -> None:
    # Authorities × situations. 3 is primary; its row and column would each hide one cell,
    # so the smallest other cell of each is hidden too: 6 in its row, 7 in its column; then
    # the row and column of those hide one each, and the next smallest (8) closes both.
    table = [
        [3, 6, 20],
        [7, 8, 30],
        [40, 50, 60],
    ]
    assert apply(table) == [
        [None, None, 20],
        [None, None, 30],
        [40, 50, 60],
    ]


def test_zeros_are_published_and_five_is_not_secret() -> None:
    assert apply([[0, 5], [5, 0]]) == [[0, 5], [5, 0]]
    assert [primary(v) for v in range(7)] == [False, True, True, True, True, False, False]


def test_a_hidden_zero_may_close_a_line() -> None:
    # Row 0 hides 2 and its smallest other cell, the 0: a reader cannot tell them apart.
    assert apply([[2, 0, 9], [9, 9, 9]])[0][:2] == [None, None]


tables = st.integers(min_value=2, max_value=6).flatmap(
    lambda cols: st.lists(
        st.lists(st.integers(min_value=0, max_value=30), min_size=cols, max_size=cols),
        min_size=2,
        max_size=6,
    )
)


@given(tables)
def test_no_line_hides_exactly_one_cell(table: list[list[int]]) -> None:
    mask = suppress(table)
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            if primary(value):
                assert mask[r][c], "every count of 1 to 4 is hidden"
    for line in [list(row) for row in mask] + [list(col) for col in zip(*mask, strict=True)]:
        assert sum(line) != 1, "a single hidden cell would be its line's total minus the rest"


@given(tables)
def test_deterministic_and_stable(table: list[list[int]]) -> None:
    once = suppress(table)
    assert suppress(table) == once
    # Publishing what was published hides nothing more: the hidden cells stay hidden and
    # the visible ones (all ≥ 5 or 0, no line with one hidden) need no further suppression.
    assert sum(map(sum, once)) >= sum(primary(v) for row in table for v in row)


def test_a_flow_matrix_with_margins_and_known_zeros() -> None:
    # A placed 3 children in B and 6 in C; nobody else placed anyone outside. The extended
    # table (margins as cells): 3 is "< 5", and so is B's column margin (3). Row A would then
    # hide only 3: its complement is 6 (the diagonal and the empty rows' and column's cells
    # are known zeros, never complements — a hidden zero in a line of total 0 is no
    # secret and would give the others away). Column C then hides only 6: its margin goes.
    view = national_view({("A", "B"): 3, ("A", "C"): 6}, ["A", "B", "C"])
    assert view["cells"] == [
        {"origin": "A", "host": "B", "children": None},
        {"origin": "A", "host": "C", "children": None},
    ]
    assert view["origins"][0] == {"authority": "A", "outside": 9, "inside": 0}
    assert [h["from_outside"] for h in view["hosts"]] == [0, None, None]
    assert view["total"] == {"outside": 9, "inside": 0}
