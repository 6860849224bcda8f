"""Capacity declarations of units: append-only history and current snapshot."""
