"""In-memory reference implementation of ``fetch(step)``, for the matching tests.

A test fake, so it lives with the tests rather than in the ``matching`` package: production
code never fetches from memory. It is also the executable specification of what the SQL
layer must return for a step:
offers whose temporality counts at this step, inside the step's area, and — when
``prefilter`` — already passing the hard constraints (the whole group, or at least one
child on the split step). The driver re-checks everything, so a looser fetch is safe,
only slower.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from matching.constraints import accepts, child_accepted
from matching.models import Need, Offer
from matching.relaxation import Area, Step


class InMemoryFetch:
    """A ``fetch`` callable over a list of offers; records the steps it was asked for."""

    def __init__(
        self,
        offers: Iterable[Offer],
        need: Need,
        neighbours: Collection[str] = (),
        *,
        prefilter: bool = True,
    ) -> None:
        self.offers = list(offers)
        self.need = need
        self.neighbours = frozenset(neighbours)
        self.prefilter = prefilter
        self.calls: list[str] = []

    def in_area(self, offer: Offer, step: Step) -> bool:
        origin = self.need.origin_department
        if not step.outside_department and origin is not None and offer.department != origin:
            return False
        if step.area == Area.NATIONAL:
            return True
        if step.radius_km is None or offer.distance_km <= step.radius_km:
            return True
        if step.area == Area.NEIGHBOURS:
            return offer.department == origin or offer.department in self.neighbours
        return False

    def wanted(self, offer: Offer, step: Step) -> bool:
        if not self.prefilter:
            return True
        if step.split_siblings:
            return offer.free_places >= 1 and any(
                child_accepted(c, offer, self.need) for c in self.need.children
            )
        return accepts(self.need, offer)

    def __call__(self, step: Step) -> list[Offer]:
        self.calls.append(step.code)
        out = [
            o
            for o in self.offers
            if step.counts(o.temporality) and self.in_area(o, step) and self.wanted(o, step)
        ]
        # Like ORDER BY location <-> origin: nearest first (ties in input order).
        out.sort(key=lambda o: o.distance_km)
        return out
