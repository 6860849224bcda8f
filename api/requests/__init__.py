"""Placement requests (demandes d'orientation): pseudonymous, audited, with their history."""
