"""The national offer registry: departments, structures and their units, foster carers."""
