"""FHIR R4 export of the offer (ROR profiles): units as Location, establishments as Organization."""
