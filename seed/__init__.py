"""Reference data and the synthetic national dataset.

``seed.reference`` loads the committed geographic referential (departments, communes) into
the database; ``seed.national`` generates a deterministic, realistic national offer
(establishments, units, foster carers, capacity declarations) so that the service, its
matching and its dashboards can be exercised at national scale without any real data.
"""
