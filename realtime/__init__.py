"""Events on the move: outbox relay, feeds (Redis Streams or in-process), WebSocket hub."""
