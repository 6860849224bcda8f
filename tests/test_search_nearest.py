"""A search's one national read per kind (``api.search.repository._Nearest``) answers a later
ladder step only with what that step's own query would return (#16: the search's cost past
the first radius steps no longer grows with every step).

Pure: the read is a list of rows in the queries' order (KNN distance, id, temporality); a
step's query is the brute force below — its filter over every candidate of the country, in
that order, cut at its LIMIT. Whatever prefix of the country the read holds, and whatever
step (any area, radius, temporalities: the ladder's order may change), the read either
declines (None) or gives exactly the brute force's answer.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.search.repository import _MARGIN, _Nearest
from matching import Area, Offer, Step

pytestmark = pytest.mark.pure

TEMPORALITIES = ("current", "h1", "h24", "h48", "d7")
DEPARTMENTS = ("69", "01", "38", "42", "13")
NEIGHBOURS = frozenset({"69", "01", "38"})


def offer(i: int, department: str, temporality: str) -> Offer:
    return Offer(
        kind="unit",
        id=f"u{i:04d}",
        department=department,
        commune="69123",
        distance_km=0.0,
        free_places=1,
        age_min_months=0,
        age_max_months=215,
        sexes=frozenset({"F", "M"}),
        timings=frozenset({"durable"}),
        publics=frozenset({"mineur"}),
        formulas=frozenset({"enfant"}),
        temporality=temporality,
    )


# A candidate: KNN distance (few distinct values: ties, as carers of one commune share its
# point), the spheroid's metres within the margin of it, department, temporality.
candidates_st = st.lists(
    st.tuples(
        st.integers(0, 12).map(lambda k: k * 1000.0),
        st.floats(1 / _MARGIN, _MARGIN),
        st.sampled_from(DEPARTMENTS),
        st.sampled_from(TEMPORALITIES),
    ),
    max_size=60,
)

steps_st = st.builds(
    lambda area, radius, temporalities: Step(
        "s",
        "s",
        area,
        None if area == Area.NATIONAL else 1.0,
        frozenset(temporalities) | {"current"},
        radius_km=None if area == Area.NATIONAL else radius,
    ),
    st.sampled_from(list(Area)),
    # Any radius, or one just inside a candidate's distance (within the sphere/spheroid margin).
    st.integers(0, 130).map(lambda r: r / 10)
    | st.builds(lambda k, f: k * f, st.integers(1, 12), st.floats(0.985, 1.0)),
    st.sets(st.sampled_from(TEMPORALITIES)),
)


def country(candidates: list[tuple[float, float, str, str]]) -> list[tuple[float, float, Offer]]:
    rows = [
        (knn, knn * factor, offer(i, department, temporality))
        for i, (knn, factor, department, temporality) in enumerate(candidates)
    ]
    return sorted(rows, key=lambda r: (r[0], r[2].id, r[2].temporality))


def own_query(rows: list[tuple[float, float, Offer]], step: Step, limit: int) -> list[Offer]:
    """The step's SQL: its filter over every candidate, nearest first, LIMIT."""
    found = []
    for _, metres, o in rows:
        if o.temporality not in step.temporalities:
            continue
        if step.area != Area.NATIONAL:
            assert step.radius_km is not None
            within = metres <= step.radius_km * 1000.0
            if not within and not (step.area == Area.NEIGHBOURS and o.department in NEIGHBOURS):
                continue
        found.append(o)
    return found[:limit]


def read_of(
    rows: list[tuple[float, float, Offer]], complete: bool, bound_m: float | None = None
) -> _Nearest:
    """The read as the repository builds it from the query's rows (here the offers are
    already made: ``to_offer`` hands them over)."""
    return _Nearest(
        "unit",
        [
            {
                "knn": knn,
                "metres": metres,
                "temporality": o.temporality,
                "department": o.department,
                "offer": o,
            }
            for knn, metres, o in rows
        ],
        complete=complete,
        to_offer=lambda row: row["offer"],
        bound_m=bound_m,
    )


def sql_prefix(rows, read: int, rnd) -> list[tuple[float, float, Offer]]:
    """The read's rows: the LIMIT of a query ordered by KNN distance alone cuts among rows
    at the same distance as it likes; the read's own order is then the queries'."""
    shuffled = sorted(rows, key=lambda r: (r[0], rnd.random()))
    return sorted(shuffled[:read], key=lambda r: (r[0], r[2].id, r[2].temporality))


@settings(max_examples=1000, deadline=None)
@given(candidates_st, steps_st, st.data(), st.integers(1, 12), st.randoms())
def test_the_national_read_answers_a_step_as_its_own_query_or_declines(
    candidates, step, data, limit, rnd
):
    rows = country(candidates)
    read = data.draw(st.integers(1, len(rows) + 1))
    nearest = read_of(sql_prefix(rows, read, rnd), complete=read > len(rows))
    answer = nearest.step(step, NEIGHBOURS, limit)
    if answer is not None:
        assert answer == own_query(rows, step, limit)


@given(candidates_st, steps_st, st.integers(1, 12))
def test_a_complete_read_always_answers(candidates, step, limit):
    """Every step of a need with fewer candidates in the country than the read holds — the
    needs that walk the whole ladder — is answered without a query."""
    rows = country(candidates)
    assert read_of(rows, complete=True).step(step, NEIGHBOURS, limit) == own_query(
        rows, step, limit
    )


def test_a_prefix_answers_a_radius_it_reaches_and_a_step_it_fills():
    """Not complete: a radius inside the read's last distance (with the sphere/spheroid
    margin) is answered, one beyond it is not; a national step is answered once the read
    holds its LIMIT of rows before the last distance (ties at it excluded)."""
    rows = country([(k * 1000.0, 1.0, "42", "current") for k in range(10)])
    read = read_of(rows, complete=False)  # the last row, at 9 km, is the horizon
    near = Step("r", "r", Area.RADIUS, 1.0, frozenset({"current"}), radius_km=5.0)
    far = Step("r", "r", Area.RADIUS, 1.0, frozenset({"current"}), radius_km=9.0)
    national = Step("n", "n", Area.NATIONAL, None, frozenset({"current"}))
    assert read.step(near, NEIGHBOURS, 50) == [o for _, _, o in rows[:6]]
    assert read.step(far, NEIGHBOURS, 50) is None
    assert read.step(national, NEIGHBOURS, 9) == [o for _, _, o in rows[:9]]
    assert read.step(national, NEIGHBOURS, 10) is None


@settings(max_examples=1000, deadline=None)
@given(candidates_st, steps_st, st.data(), st.integers(1, 12), st.randoms())
def test_the_ring_read_answers_a_step_within_it_as_its_own_query_or_declines(
    candidates, step, data, limit, rnd
):
    """The ring read (``_ring``): the national read's rows within a radius, a prefix of them,
    complete when the ring holds fewer. It answers a radius step within its radius exactly as
    the step's own query over the whole country would, and declines any other step."""
    rows = country(candidates)
    bound = data.draw(st.integers(0, 13)) * 1000.0
    ring = [r for r in rows if r[1] <= bound]
    read = data.draw(st.integers(1, len(ring) + 1))
    nearest = read_of(sql_prefix(ring, read, rnd), complete=read > len(ring), bound_m=bound)
    answer = nearest.step(step, NEIGHBOURS, limit)
    if step.area != Area.RADIUS or step.radius_km * 1000.0 > bound:
        assert answer is None
    elif read > len(ring):
        assert answer == own_query(rows, step, limit)
    elif answer is not None:
        assert answer == own_query(rows, step, limit)
