"""Mapping to the national ROR code systems, so that a FHIR export is a mapping, not a redesign.

Statuses (TRE_R330-StatutCapacite) and temporalities (TRE_R331-TemporaliteCapacite).
"""

STATUS_CODES: dict[str, str] = {
    "installed": "01",  # installé
    "available": "02",  # disponible
    "occupied": "03",  # occupé
    "reserved": "04",  # réservé (enfant identifié attendu sous 24 h)
    "closed": "05",  # fermé
    "additional": "06",  # supplémentaire
}

TEMPORALITY_CODES: dict[str, str] = {
    "current": "01",  # courant
    "h1": "02",  # +1 h
    "h24": "03",  # +24 h
    "h48": "04",  # +48 h
    "d7": "05",  # +7 jours
}
