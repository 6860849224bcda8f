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

Pure functions, property-tested (``tests/test_steering_secrecy.py``).
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
