"""Searching places for a need: SQL candidate retrieval per relaxation step + matching/."""
