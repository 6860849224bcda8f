"""Events on the move: outbox relay, feeds (Redis Streams or in-process), WebSocket hub.

Below ``api``: the service hands it what it needs (DSN, NOTIFY channel, connection set-up,
feed parameters, the bus) and it imports nothing from ``api`` (``tests/test_layers.py``).
"""
