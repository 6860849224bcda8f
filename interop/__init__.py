"""Exchanges with national registries: the production import of the official FINESS extract.

Kept apart from ``seed`` (synthetic and reference data for development and load tests)
because this code runs against production data: ``interop.finess_import`` reads the
published extract and merges it idempotently; ``interop.finess_units`` is the default unit
an imported establishment gets from its category until it describes its own.
"""
