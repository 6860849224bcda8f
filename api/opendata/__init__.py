"""Open data: the offer's availability per department and category, aggregates only."""
