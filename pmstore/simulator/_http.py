"""JSON responses of the simulated REST APIs, each recorded in the journal."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from pmstore.simulator._journal import Journal

__all__ = ["reply"]


def reply(
    journal: Journal,
    request: web.Request,
    status: int,
    body: Any,
    *,
    items: int = 0,
    record: bool = True,
) -> web.Response:
    """A JSON response, noted in ``journal`` (its text kept when ``record``)."""
    text = orjson.dumps(body)
    journal.served(
        request.method,
        request.path,
        request.query_string,
        status,
        items,
        text.decode() if record else None,
    )
    return web.Response(body=text, status=status, content_type="application/json")
