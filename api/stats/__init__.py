"""Aggregated statistics (national steering): never a child-level record."""
