"""Gamma's keyset market listing: ``GET /markets/keyset``.

Query: ``limit`` (default 20, capped at ``gamma_page_max``: 100),
``after_cursor`` (the previous page's ``next_cursor``), ``closed``
(``false`` when absent), ``active``, ``condition_ids``, ``clob_token_ids``,
``slug`` (each repeatable or comma-separated; at most ``condition_ids_max``
condition ids), ``tag_id``. ``offset`` is refused with 422, as are a bad
``limit``, ``closed`` or cursor. Other parameters are ignored. Markets come
in listing order (Gamma id); the last page has no ``next_cursor``.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from multidict import MultiMapping

from pmstore.simulator._config import SimulatorConfig
from pmstore.simulator._exchange import Exchange
from pmstore.simulator._http import reply
from pmstore.simulator._journal import Journal
from pmstore.simulator._market import Market
from pmstore.simulator._payloads import gamma_market

__all__ = ["GammaApi", "decode_cursor", "encode_cursor"]


class _BadQueryError(Exception):
    pass


def encode_cursor(gamma_id: int) -> str:
    """The opaque ``next_cursor`` after the market with ``gamma_id``."""
    return base64.urlsafe_b64encode(f"id:{gamma_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The Gamma id an ``after_cursor`` names; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid after_cursor {cursor!r}") from exc
    prefix, _, number = text.partition(":")
    if prefix != "id" or not number.isdigit():
        raise ValueError(f"invalid after_cursor {cursor!r}")
    return int(number)


def _values(query: MultiMapping[str], name: str) -> list[str]:
    return [part for value in query.getall(name, []) for part in value.split(",") if part]


def _flag(query: MultiMapping[str], name: str, default: bool | None) -> bool | None:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _BadQueryError(f"{name} must be true or false, not {value!r}")


class GammaApi:
    """The Gamma handlers (see the module docstring)."""

    def __init__(self, config: SimulatorConfig, exchange: Exchange, journal: Journal) -> None:
        self.config = config
        self.exchange = exchange
        self.journal = journal

    def _fail(self, request: web.Request, message: str) -> web.Response:
        return reply(
            self.journal, request, 422, {"error": message}, record=self.config.record_frames
        )

    async def markets_keyset(self, request: web.Request) -> web.Response:
        """``GET /markets/keyset``."""
        query = request.query
        config = self.config
        if "offset" in query:
            return self._fail(
                request, "offset is not supported by keyset pagination: use after_cursor"
            )
        try:
            limit = int(query.get("limit", config.gamma_default_limit))
        except ValueError:
            return self._fail(request, f"limit must be an integer, not {query.get('limit')!r}")
        if limit < 1:
            return self._fail(request, f"limit must be >= 1, not {limit}")
        limit = min(limit, config.gamma_page_max)
        try:
            closed = _flag(query, "closed", False)
            active = _flag(query, "active", None)
        except _BadQueryError as exc:
            return self._fail(request, str(exc))
        after = -1
        cursor = query.get("after_cursor")
        if cursor:
            try:
                after = decode_cursor(cursor)
            except ValueError as exc:
                return self._fail(request, str(exc))
        condition_ids = set(_values(query, "condition_ids"))
        if len(condition_ids) > config.condition_ids_max:
            return self._fail(
                request, f"at most {config.condition_ids_max} condition_ids per request"
            )
        tokens = set(_values(query, "clob_token_ids"))
        slugs = set(_values(query, "slug"))
        tag = query.get("tag_id")

        def wanted(market: Market) -> bool:
            return (
                market.gamma_id > after
                and market.closed == closed
                and (active is None or active)
                and (not condition_ids or market.condition_id in condition_ids)
                and (not slugs or market.slug in slugs)
                and (not tokens or not tokens.isdisjoint(market.token_ids))
                and (tag is None or any(t.id == tag for t in market.tags))
            )

        page: list[Market] = []
        more = False
        for market in self.exchange.markets.values():
            if wanted(market):
                if len(page) == limit:
                    more = True
                    break
                page.append(market)
        now = self.journal.clock()
        body: dict[str, object] = {"markets": [gamma_market(m, now) for m in page]}
        if more:
            body["next_cursor"] = encode_cursor(page[-1].gamma_id)
        return reply(self.journal, request, 200, body, items=len(page), record=config.record_frames)
