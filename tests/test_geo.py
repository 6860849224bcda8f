"""Pure tests of the geographic referential (no database): data files, bounds, FINESS."""

from __future__ import annotations

import pytest

from geo.bounds import haversine_km, in_france
from geo.finess import finess_check_key, is_valid_finess, lambert93_to_wgs84, make_finess
from geo.referential import (
    PRECISIONS,
    department_codes,
    is_valid_department,
    load_communes,
    load_departments,
    load_regions,
    neighbours,
)

pytestmark = pytest.mark.pure

EXPECTED_DEPARTMENTS = (
    [f"{n:02d}" for n in range(1, 20)]
    + ["2A", "2B"]
    + [f"{n:02d}" for n in range(21, 96)]
    + ["971", "972", "973", "974", "976"]
)


def test_every_department_present_once() -> None:
    assert len(EXPECTED_DEPARTMENTS) == 101
    assert list(department_codes()) == EXPECTED_DEPARTMENTS
    assert all(is_valid_department(code) for code in EXPECTED_DEPARTMENTS)
    for code in ("20", "975", "977", "69M", "00", "96", ""):
        assert not is_valid_department(code)


def test_departments_have_region_and_centroid_in_france() -> None:
    regions = load_regions()
    for department in load_departments().values():
        assert regions[department.region_code] == department.region_name
        assert in_france(department.lat, department.lon), department


def test_every_commune_located_in_france_with_known_precision() -> None:
    communes = load_communes()
    assert len(communes) > 34_000
    departments = set(department_codes())
    for commune in communes.values():
        assert commune.precision in PRECISIONS, commune
        assert commune.department in departments, commune
        assert (commune.lat, commune.lon) != (0.0, 0.0), commune
        assert in_france(commune.lat, commune.lon), commune
    assert {c.department for c in communes.values()} == departments


def test_population_mostly_placed_by_geonames() -> None:
    communes = list(load_communes().values())
    total = sum(c.population for c in communes)
    placed = sum(c.population for c in communes if c.precision == "geonames")
    assert placed / total >= 0.80


def test_known_communes() -> None:
    communes = load_communes()
    paris = communes["75056"]
    assert paris.precision == "geonames"
    assert haversine_km(paris.lat, paris.lon, 48.8566, 2.3522) < 3
    assert "75001" in paris.postcodes
    assert communes["97411"].department == "974"  # Saint-Denis (La Réunion)
    assert communes["2A004"].department == "2A"  # Ajaccio


def test_neighbours_symmetric_and_known_pairs() -> None:
    for code in department_codes():
        found = neighbours(code)
        assert code not in found
        for other in found:
            assert code in neighbours(other), (code, other)
    assert {"01", "38"} <= neighbours("69")
    assert neighbours("2A") == {"2B"}
    assert "2A" in neighbours("2B")
    for overseas in ("971", "972", "973", "974", "976"):
        assert neighbours(overseas) == set()
    with pytest.raises(KeyError):
        neighbours("69M")


def test_in_france_boxes() -> None:
    assert in_france(48.8566, 2.3522)  # Paris
    assert in_france(41.9192, 8.7386)  # Ajaccio
    assert in_france(16.2411, -61.5331)  # Pointe-à-Pitre
    assert in_france(14.6161, -61.0588)  # Fort-de-France
    assert in_france(4.9224, -52.3135)  # Cayenne
    assert in_france(-20.8821, 55.4507)  # Saint-Denis, La Réunion
    assert in_france(-12.7806, 45.2279)  # Mamoudzou
    assert not in_france(0.0, 0.0)
    assert not in_france(40.4168, -3.7038)  # Madrid
    assert not in_france(40.7128, -74.0060)  # New York
    assert not in_france(2.3522, 48.8566)  # Paris with lat/lon swapped


def test_haversine_paris_lyon() -> None:
    assert haversine_km(48.8566, 2.3522, 45.7640, 4.8357) == pytest.approx(392, abs=5)
    assert haversine_km(45.0, 5.0, 45.0, 5.0) == 0.0


@pytest.mark.parametrize("number", ["750712184", "130786049", "970100012", "980501506"])
def test_real_finess_numbers_pass_luhn(number: str) -> None:
    assert is_valid_finess(number)


@pytest.mark.parametrize("number", ["750712184", "130786049", "970100012"])
def test_one_altered_digit_fails(number: str) -> None:
    for position in range(9):
        digit = int(number[position])
        for replacement in range(10):
            if replacement != digit:
                altered = number[:position] + str(replacement) + number[position + 1 :]
                assert not is_valid_finess(altered), altered


@pytest.mark.parametrize("code", EXPECTED_DEPARTMENTS)
def test_make_finess_round_trips(code: str) -> None:
    for serial in (0, 1, 4242, 999_999):
        number = make_finess(code, serial)
        assert len(number) == 9
        assert is_valid_finess(number), number
        assert finess_check_key(number[:8]) == number[8]
        assert int(number[2:8]) == serial


def test_finess_prefixes_and_bad_input() -> None:
    assert make_finess("2A", 1).startswith("2A")
    assert make_finess("971", 1).startswith("9A")
    assert make_finess("976", 1).startswith("9F")
    # Corsican letters count as 0 in the Luhn sum.
    assert make_finess("2B", 77)[8] == finess_check_key("20000077")
    for bad in ("", "75071218", "7507121840", "75071218X", "ZZ0712184", None):
        assert not is_valid_finess(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_finess("975", 1)
    with pytest.raises(ValueError):
        make_finess("01", 1_000_000)
    with pytest.raises(ValueError):
        finess_check_key("1234567")


def test_lambert93_to_wgs84() -> None:
    pytest.importorskip("pyproj")
    lat, lon = lambert93_to_wgs84(652_469.0, 6_861_580.0)  # near Notre-Dame de Paris
    assert haversine_km(lat, lon, 48.853, 2.350) < 0.5
