"""The live feeds' edge: the WebSocket routes, where tokens and scopes are checked, over the
hub of ``realtime`` (which knows nothing of auth or settings)."""
