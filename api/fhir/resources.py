"""Rows → FHIR R4 resources following the ROR profiles (pure: no I/O).

A **unit** is a ``Location`` (profile ``ror-location``): its capacity is the ROR extension
``ror-location-supported-capacity``, one occurrence per (status, temporality) of its
snapshots, with the national codes already used by the database (``api.capacity.ror``):
status TRE_R330, temporality TRE_R331, gender of the available places TRE_R332, capacity
nature TRE_R329 (``02`` place: child protection counts places, not beds), source TRE_R335
(``01``, the establishment's own declaration — Places does not tell a form from its DUI's
API) and temporary assignment TRE_R337 (``01`` none). Its ``managingOrganization`` is the
**establishment**, an ``Organization`` (profile ``ror-organization``) identified by its
FINESS number, readable at ``/fhir/Organization/{id}`` or included in a search with
``_include=Location:organization``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.capacity.ror import STATUS_CODES, TEMPORALITY_CODES
from matching.constraints import band_label
from matching.vocabulary import FINESS_CATEGORY_LABELS

ROR = "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition"
NOS = "https://mos.esante.gouv.fr/NOS"
LOCATION_PROFILE = f"{ROR}/ror-location"
ORGANIZATION_PROFILE = f"{ROR}/ror-organization"
CAPACITY_EXTENSION = f"{ROR}/ror-location-supported-capacity"
COMMUNE_EXTENSION = f"{ROR}/ror-commune-cog"
COORDINATE_RELIABILITY = f"{ROR}/ror-coordinate-reliability"

FINESS_SYSTEM = "http://finess.sante.gouv.fr"
IDNAT_STRUCT_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
UNIT_ID_SYSTEM = "urn:ietf:rfc:3986"

TRE_R13 = f"{NOS}/TRE_R13-Commune/FHIR/TRE-R13-Commune"
TRE_R66 = f"{NOS}/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement"
TRE_G07 = f"{NOS}/TRE_G07-TypeIdentifiantStructure/FHIR/TRE-G07-TypeIdentifiantStructure"
TRE_R329 = f"{NOS}/TRE_R329-NatureCapacite/FHIR/TRE-R329-NatureCapacite"
TRE_R330 = f"{NOS}/TRE_R330-TypeStatutCapacite/FHIR/TRE-R330-TypeStatutCapacite"
TRE_R331 = f"{NOS}/TRE_R331-TemporaliteCapacite/FHIR/TRE-R331-TemporaliteCapacite"
TRE_R332 = f"{NOS}/TRE_R332-GenreCapacite/FHIR/TRE-R332-GenreCapacite"
TRE_R335 = f"{NOS}/TRE_R335-TypeSourceCapacite/FHIR/TRE-R335-TypeSourceCapacite"
TRE_R337 = f"{NOS}/TRE_R337-AffectationTemporaire/FHIR/TRE-R337-AffectationTemporaire"
TRE_R343 = f"{NOS}/TRE_R343-FonctionLieu/FHIR/TRE-R343-FonctionLieu"

STATUS_LABELS = {
    "01": "Installé",
    "02": "Disponible",
    "03": "Occupé",
    "04": "Réservé",
    "05": "Fermé",
    "06": "Supplémentaire",
}
TEMPORALITY_LABELS = {
    "01": "Courant",
    "02": "+1 heure",
    "03": "+24 heures",
    "04": "+48 heures",
    "05": "+7 jours",
}
#: ``available_gender`` → TRE_R332 (01 femme, 02 homme, 03 indifférencié).
GENDER_CODES = {"F": ("01", "Femme"), "M": ("02", "Homme"), "any": ("03", "Indifférencié")}
_TEMPORALITY_ORDER = tuple(TEMPORALITY_CODES)


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def instant(value: datetime) -> str:
    return value.isoformat()


def address(row: dict[str, Any]) -> dict[str, Any]:
    """The establishment's postal address; ``state`` is the department code (searchable
    with ``address-state``)."""
    result: dict[str, Any] = {"use": "work", "type": "physical"}
    if row["address"]:
        result["line"] = [row["address"]]
    result["city"] = row["commune_name"]
    if row["postal_code"]:
        result["postalCode"] = row["postal_code"]
    result["state"] = row["department"]
    result["country"] = "FR"
    return result


def capacity_extensions(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """One ROR capacity extension per status of a snapshot (one temporality)."""
    temporality = TEMPORALITY_CODES[snapshot["temporality"]]
    extensions = []
    for field, status in STATUS_CODES.items():
        parts: list[dict[str, Any]] = [
            {"url": "capacityType", "valueCodeableConcept": concept(TRE_R329, "02", "Place")},
            {
                "url": "capacityStatus",
                "valueCodeableConcept": concept(TRE_R330, status, STATUS_LABELS[status]),
            },
            {
                "url": "temporalityCapacity",
                "valueCodeableConcept": concept(
                    TRE_R331, temporality, TEMPORALITY_LABELS[temporality]
                ),
            },
            {"url": "nbCapacity", "valueInteger": snapshot[field]},
            {
                "url": "capacitySourceType",
                "valueCodeableConcept": concept(TRE_R335, "01", "Saisie manuelle"),
            },
        ]
        if field == "available":
            code, label = GENDER_CODES[snapshot["available_gender"]]
            parts.append(
                {
                    "url": "genderCapacityAvailable",
                    "valueCodeableConcept": concept(TRE_R332, code, label),
                }
            )
        parts.append(
            {"url": "capacityUpdateDate", "valueDateTime": instant(snapshot["declared_at"])}
        )
        parts.append(
            {
                "url": "temporaryAssignement",
                "valueCodeableConcept": concept(TRE_R337, "01", "Aucune"),
            }
        )
        extensions.append({"url": CAPACITY_EXTENSION, "extension": parts})
    return extensions


def _description(row: dict[str, Any]) -> str:
    sexes = {("F", "M"): "filles et garçons", ("F",): "filles", ("M",): "garçons"}
    text = (
        f"{band_label(row['age_min_months'], row['age_max_months'])}, "
        f"{sexes.get(tuple(sorted(row['sexes'])), '/'.join(row['sexes']))} ; "
        f"accueil : {', '.join(row['timings'])} ; public : {', '.join(row['publics'])} ; "
        f"formule : {', '.join(row['formulas'])}"
    )
    if row["disability_specialised"]:
        text += f" ; accueil spécialisé : {', '.join(row['disability_specialised'])}"
    if row["disability_supported"]:
        text += f" ; accueil avec soutien : {', '.join(row['disability_supported'])}"
    if row["is_default"]:
        text += " (unité par défaut issue de la catégorie FINESS, à préciser par l'établissement)"
    return text


def organization_reference(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": f"Organization/{row['structure_id']}",
        "identifier": {"system": FINESS_SYSTEM, "value": row["finess"]},
        "display": row["structure_name"],
    }


def location(row: dict[str, Any]) -> dict[str, Any]:
    """A unit with its establishment's address and point and its capacity snapshots."""
    snapshots = sorted(row["snapshots"], key=lambda s: _TEMPORALITY_ORDER.index(s["temporality"]))
    extensions: list[dict[str, Any]] = [
        {
            "url": COMMUNE_EXTENSION,
            "valueCodeableConcept": concept(TRE_R13, row["commune"], row["commune_name"]),
        }
    ]
    for snapshot in snapshots:
        extensions.extend(capacity_extensions(snapshot))
    updated = max(
        [s["declared_at"] for s in snapshots]
        + [t for t in (row["imported_at"], row["structure_created_at"]) if t is not None]
    )
    return {
        "resourceType": "Location",
        "id": str(row["id"]),
        "meta": {"profile": [LOCATION_PROFILE], "lastUpdated": instant(updated)},
        "extension": extensions,
        "identifier": [{"system": UNIT_ID_SYSTEM, "value": f"urn:uuid:{row['id']}"}],
        "status": "active",
        "name": row["name"],
        "description": _description(row),
        "mode": "instance",
        "type": [concept(TRE_R343, "001", "Hébergement")],
        "address": address(row),
        "position": {
            "extension": [
                {
                    "url": COORDINATE_RELIABILITY,
                    "valueBoolean": row["location_precision"] == "address",
                }
            ],
            "longitude": round(row["lon"], 6),
            "latitude": round(row["lat"], 6),
        },
        "managingOrganization": organization_reference(row),
    }


def organization(row: dict[str, Any]) -> dict[str, Any]:
    """An establishment (FINESS entité géographique) with its FINESS identifiers."""
    category = row["category"]
    updated = row["imported_at"] or row["structure_created_at"]
    result: dict[str, Any] = {
        "resourceType": "Organization",
        "id": str(row["structure_id"]),
        "meta": {"profile": [ORGANIZATION_PROFILE], "lastUpdated": instant(updated)},
        "identifier": [
            {"system": FINESS_SYSTEM, "value": row["finess"]},
            {
                "type": concept(TRE_G07, "40", "Identifiant national de structure"),
                "system": IDNAT_STRUCT_SYSTEM,
                "value": f"1{row['finess']}",
            },
        ],
        "active": True,
        "type": [concept(TRE_R66, category, FINESS_CATEGORY_LABELS.get(category))],
        "name": row["structure_name"],
        "address": [address(row)],
    }
    if row.get("finess_ej"):
        result["partOf"] = {"identifier": {"system": FINESS_SYSTEM, "value": row["finess_ej"]}}
    return result
