"""Agréments of foster carers, owned by the authority that issued them (issue #15)."""
