"""Places HTTP and WebSocket edge: settings, auth, database access, routes and services."""
