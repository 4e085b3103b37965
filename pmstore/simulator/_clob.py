"""The CLOB's book endpoints: ``POST /books`` and ``GET /book``.

``POST /books`` takes ``[{"token_id": ...}, ...]`` and returns the books of
the tokens whose book is open, in request order (others are left out);
``GET /book?token_id=`` returns one book, or 404 ``No orderbook exists for
the requested token id``. A malformed request gets 400. Each endpoint has its
own sliding-window rate limit (``books_rate_limit``: Polymarket's 500
requests per 10 s; ``book_rate_limit``: 1,500): beyond it, HTTP 429.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from pmstore.simulator._config import SimulatorConfig
from pmstore.simulator._exchange import Exchange
from pmstore.simulator._faults import RateWindow
from pmstore.simulator._http import reply
from pmstore.simulator._journal import Journal
from pmstore.simulator._payloads import Payload, rest_book

__all__ = ["ClobApi"]

NO_BOOK = "No orderbook exists for the requested token id"


class ClobApi:
    """The CLOB handlers (see the module docstring)."""

    def __init__(
        self,
        config: SimulatorConfig,
        exchange: Exchange,
        journal: Journal,
        open_due: Callable[[], object],
    ) -> None:
        self.config = config
        self.exchange = exchange
        self.journal = journal
        self.open_due = open_due
        """Opens the books whose listing delay has passed (announcing them on the channel)."""
        self.books_window = RateWindow(*config.books_rate_limit)
        self.book_window = RateWindow(*config.book_rate_limit)

    def _reply(self, request: web.Request, status: int, body: Any, items: int = 0) -> web.Response:
        return reply(
            self.journal, request, status, body, items=items, record=self.config.record_frames
        )

    def _book(self, token_id: str, now_ms: int) -> Payload | None:
        self.open_due()
        found = self.exchange.by_token.get(token_id)
        if found is None or not found[0].booked or found[0].closed:
            return None
        return rest_book(found[0], found[1], now_ms)

    async def books(self, request: web.Request) -> web.Response:
        """``POST /books``."""
        if not self.books_window.allow():
            return self._reply(request, 429, {"error": "Too Many Requests"})
        try:
            body: Any = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._reply(request, 400, {"error": "Invalid payload"})
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("token_id"), str) for item in body
        ):
            return self._reply(request, 400, {"error": "Invalid payload"})
        now = self.journal.clock()
        books = [book for item in body if (book := self._book(item["token_id"], now)) is not None]
        return self._reply(request, 200, books, items=len(books))

    async def book(self, request: web.Request) -> web.Response:
        """``GET /book?token_id=``."""
        if not self.book_window.allow():
            return self._reply(request, 429, {"error": "Too Many Requests"})
        token_id = request.query.get("token_id")
        if not token_id:
            return self._reply(request, 400, {"error": "Invalid payload: token_id is required"})
        book = self._book(token_id, self.journal.clock())
        if book is None:
            return self._reply(request, 404, {"error": NO_BOOK})
        return self._reply(request, 200, book, items=1)
