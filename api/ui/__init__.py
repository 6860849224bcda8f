"""Server-rendered dashboards and the declaration page (issue 6)."""
