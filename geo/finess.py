"""FINESS number helpers (pure) and the Lambert-93 → WGS84 conversion used by importers.

A FINESS number has 9 characters: a 2-character department prefix, 6 digits, and a Luhn
check key over the first 8 characters (the same algorithm as SIREN). Corsican numbers
start with ``2A``/``2B``; for the Luhn computation the letter counts as 0, so ``2A…`` and
``20…`` share a key. This is the convention this project uses for the few letter-bearing
prefixes; real metropolitan and overseas numbers are otherwise all digits.

Overseas: the official extract tags the department of a structure ``9A`` (Guadeloupe) …
``9F`` (Mayotte), while the real overseas numbers themselves are numeric (``9701…`` in
Guadeloupe, ``9704…`` in La Réunion, ``9805…`` in Mayotte). ``make_finess`` builds
*synthetic* numbers and uses ``9A``…``9F`` as their prefix, so that a generated overseas
number says its department in two characters and can never collide with a real one.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

#: INSEE department code of each DROM → the FINESS extract's department code.
OVERSEAS_FINESS_PREFIX: dict[str, str] = {
    "971": "9A",
    "972": "9B",
    "973": "9C",
    "974": "9D",
    "976": "9F",
}
_FIRST8 = re.compile(r"^(?:\d\d|2[AB]|9[A-F])\d{6}$")
_LETTER_VALUE = dict.fromkeys("ABCDEF", 0)
MAX_SERIAL = 999_999


def finess_check_key(first8: str) -> str:
    """The Luhn key (one digit) of the first 8 characters of a FINESS number.

    Letters of the prefix (``2A``, ``2B``, ``9A``…``9F``) count as 0. Raises ValueError on
    anything that is not a FINESS body.
    """
    if not _FIRST8.match(first8):
        raise ValueError(f"not the first 8 characters of a FINESS number: {first8!r}")
    values = [_LETTER_VALUE[ch] if ch in _LETTER_VALUE else int(ch) for ch in first8]
    total = 0
    # The key will sit at the right, so the rightmost body digit is the one doubled.
    for position, value in enumerate(reversed(values)):
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def is_valid_finess(n: str) -> bool:
    """True when ``n`` is 9 characters, well formed, and its Luhn key is right."""
    if not isinstance(n, str) or len(n) != 9 or not n[8].isdigit():
        return False
    if not _FIRST8.match(n[:8]):
        return False
    return finess_check_key(n[:8]) == n[8]


def finess_prefix(department_code: str) -> str:
    """The 2-character prefix used for a department: its code, or 9A…9F overseas."""
    if department_code in OVERSEAS_FINESS_PREFIX:
        return OVERSEAS_FINESS_PREFIX[department_code]
    if re.fullmatch(r"\d\d|2[AB]", department_code) and department_code not in ("00", "20"):
        return department_code
    raise ValueError(f"no FINESS prefix for department {department_code!r}")


def make_finess(department_code: str, serial: int) -> str:
    """A valid (synthetic) FINESS number: prefix + 6-digit serial + Luhn key."""
    if not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"serial must be in 0..{MAX_SERIAL}, got {serial}")
    body = f"{finess_prefix(department_code)}{serial:06d}"
    return body + finess_check_key(body)


@cache
def _lambert93_transformer() -> Any:
    from pyproj import Transformer  # imported on use: the service's start-up needs no PROJ

    return Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)


def lambert93_to_wgs84(x: float, y: float) -> tuple[float, float]:
    """Convert Lambert-93 metres (EPSG:2154, metropolitan FINESS) to ``(lat, lon)``.

    pyproj (a runtime dependency, for ``places import-finess``) is imported on first use
    only. Overseas FINESS coordinates use local UTM zones, not Lambert-93, and must not be
    passed here.
    """
    lon, lat = _lambert93_transformer().transform(x, y)
    return float(lat), float(lon)
