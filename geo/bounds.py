"""Cheap geographic sanity checks: is a point in France, how far apart are two points.

``in_france`` tests a handful of rectangular boxes (latitude/longitude, WGS84), one per
territory, each with a margin of about 0.1–0.3° so that coastal points and islets pass.
Boxes are honest but coarse: the metropolitan one also contains parts of Belgium,
Luxembourg, Germany, Switzerland, Italy, Spain and Andorra (Brussels, Geneva, Barcelona
are "in France" here). Use it to reject swapped coordinates, (0, 0) and other continents,
not to decide a border.
"""

from __future__ import annotations

import math
from typing import NamedTuple

EARTH_RADIUS_KM = 6371.0088


class Box(NamedTuple):
    """A latitude/longitude rectangle (degrees, inclusive)."""

    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point lies in the rectangle."""
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max


#: Extents of the territories plus a small margin. Metropolitan France runs from
#: 41.33° N (Corsica) to 51.09° N (Bray-Dunes) and 4.80° W (Ouessant) to 9.56° E (Corsica).
BOXES: tuple[Box, ...] = (
    Box("metropole", 41.2, 51.3, -5.3, 9.8),
    Box("guadeloupe", 15.75, 16.6, -61.9, -60.9),
    Box("martinique", 14.3, 14.95, -61.3, -60.7),
    Box("guyane", 2.0, 5.9, -54.7, -51.5),
    Box("la_reunion", -21.5, -20.8, 55.1, 55.95),
    Box("mayotte", -13.1, -12.55, 44.9, 45.4),
)


def in_france(lat: float, lon: float) -> bool:
    """True when (lat, lon) falls in the box of metropolitan France or of a DROM."""
    return any(box.contains(lat, lon) for box in BOXES)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres on a spherical Earth (error below 0.5 %)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
