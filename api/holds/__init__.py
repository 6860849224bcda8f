"""Holds (réservations), admissions and exits: the orientation workflow's transitions."""
