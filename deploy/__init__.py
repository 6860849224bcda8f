"""Deployment configuration shipped with the service (the reverse proxy in front of it)."""
