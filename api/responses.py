"""How a write's answer leaves: services return ``api.changes.Written``; routes turn it into
a response here, so that replays look the same for every operation."""

import orjson
from fastapi.responses import Response

from api.changes import Written


def written(answer: Written, headers: dict[str, str] | None = None) -> Response:
    """The answer as JSON. A replay carries ``Idempotent-Replayed: true`` and only that
    header: it repeats the stored body and status, nothing computed now."""
    if answer.replayed:
        headers = {"Idempotent-Replayed": "true"}
    return Response(
        orjson.dumps(answer.body),
        status_code=answer.status,
        media_type="application/json",
        headers=headers,
    )
