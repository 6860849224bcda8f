"""Statistical secrecy of the national views of children (issue #18).

A count of children below ``THRESHOLD`` (5) is never published: it is shown as "< 5" (in
JSON: ``null`` beside a ``suppressed`` flag). That alone is not enough when the row's or the
column's total is published: a single hidden cell in a line would be its total minus the
others. So, **secondary suppression**: as long as some line (row or column) hides exactly one
cell, hide also that line's smallest other visible cell (ties: the first in the line's
order); repeat until every line hides none or at least two cells. Zeros are published (a
zero is not a child) but may be hidden as a secondary cell, so that nothing tells a hidden
zero from a hidden count. The method is the classic one of the statistical offices' tables
(hide the primary cells, then the cheapest complements per line); it does not protect a
line that has only one cell (its total is then the cell), which callers avoid by never
publishing such a line's total separately.

**Over time** (a series published month by month: the open data, the dashboards' trends),
each month's table is suppressed on its own, and a month's published value could be joined
to the previous month's by a published change. So a change (``changes``) is published only
between two published values; a change with a hidden end is hidden too. Then the changes
carry nothing the levels do not: each published one is the difference of two published
values, and the sum of a column's hidden changes is its margin's change minus the published
ones — the difference of the two months' sums of hidden cells, each already known from its
own month's column. Nor may a flow that links two months (entries, exits of a waiting list
per authority) be published beside the levels: level(m) = level(m − 1) + entries − exits
would give a hidden level away; none is published (docs/domain.md, "Secrecy over time").

Pure functions, property-tested (``tests/test_steering_secrecy.py``, and the scenarios of
``tests/test_stats_secrecy_time.py``).
"""

from collections.abc import Sequence

THRESHOLD = 5


def primary(value: int) -> bool:
    """A count of 1 to 4 children is hidden (0 is not a child; 5 and more are published)."""
    return 0 < value < THRESHOLD


def suppress(
    table: Sequence[Sequence[int]], structural: Sequence[Sequence[bool]] | None = None
) -> list[list[bool]]:
    """The cells to hide in a table of counts (rows × columns, every row as long): primary
    cells, then secondary ones until no row or column hides exactly one cell (when it has
    another cell to hide). Deterministic: the same table always hides the same cells.

    ``structural``: cells everybody knows without the table (the diagonal of a flow matrix:
    no authority places "outside" in itself). They are never hidden nor chosen as a
    complement — hiding a cell known to be zero protects nothing."""
    rows = len(table)
    cols = len(table[0]) if rows else 0
    if any(len(row) != cols for row in table):
        raise ValueError("every row of the table must have the same length")
    hidden = [[primary(v) for v in row] for row in table]

    def lines() -> list[list[tuple[int, int]]]:
        by_row = [[(r, c) for c in range(cols)] for r in range(rows)]
        by_col = [[(r, c) for r in range(rows)] for c in range(cols)]
        return by_row + by_col

    changed = True
    while changed:
        changed = False
        for line in lines():
            if sum(hidden[r][c] for r, c in line) != 1:
                continue
            visible = [(table[r][c], i, (r, c)) for i, (r, c) in enumerate(line)]
            candidates = [
                v
                for v in visible
                if not hidden[v[2][0]][v[2][1]]
                and not (structural and structural[v[2][0]][v[2][1]])
            ]
            if not candidates:
                continue
            _, _, (r, c) = min(candidates)
            hidden[r][c] = True
            changed = True
    return hidden


def apply(
    table: Sequence[Sequence[int]], structural: Sequence[Sequence[bool]] | None = None
) -> list[list[int | None]]:
    """The table as published: hidden cells are ``None`` (shown "< 5")."""
    mask = suppress(table, structural)
    return [[None if mask[r][c] else v for c, v in enumerate(row)] for r, row in enumerate(table)]


def changes(previous: Sequence[int | None], current: Sequence[int | None]) -> list[int | None]:
    """Month-over-month changes of published values, line by line (``None``: hidden): a
    change is published only when both months' values are — never beside a hidden one, whose
    neighbour month's value would give it away (current = previous + change)."""
    return [
        None if p is None or c is None else c - p for p, c in zip(previous, current, strict=True)
    ]


def apply_column(values: Sequence[int]) -> list[int | None]:
    """A column of counts whose total is published: ``apply`` on it as a one-column table."""
    return [v for (v,) in apply([[v] for v in values])]
