"""Recognising a payload (:func:`detect_kind`) and converting any payload, list or
page (:func:`convert`) into :class:`Converted` records and :class:`Reject` s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pmstore.errors import PayloadError
from pmstore.models import (
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
)
from pmstore.polymarket._fields import JsonObject, payload_error
from pmstore.polymarket.clob import (
    book_to_snapshot,
    clob_market_to_record,
    clob_market_to_resolution,
    clob_trade_to_record,
)
from pmstore.polymarket.data_api import (
    RESOLUTION_V2_KEYS,
    data_resolution_to_record,
    data_trade_to_record,
)
from pmstore.polymarket.gamma import (
    event_markets,
    gamma_market_to_record,
    gamma_market_to_resolution,
)
from pmstore.polymarket.websocket import (
    best_bid_ask_to_snapshot,
    last_trade_price_to_snapshot,
    last_trade_price_to_trade,
    price_change_parts,
    ws_market_resolved_to_resolution,
    ws_new_market_to_record,
)

__all__ = ["KINDS", "Converted", "Reject", "convert", "detect_kind"]


KINDS: Final[frozenset[str]] = frozenset(
    {
        "gamma_market",
        "gamma_event",
        "clob_market",
        "clob_book",
        "ws_book",
        "ws_price_change",
        "ws_best_bid_ask",
        "ws_last_trade_price",
        "ws_market_resolved",
        "ws_new_market",
        "ws_tick_size_change",
        "ws_trade",
        "ws_order",
        "clob_trade",
        "data_trade",
        "data_resolution",
        "page",
        "list",
        "unknown",
    }
)
"""Every value :func:`detect_kind` can return."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A payload (or part of one) that was not converted.

    ``kind`` is the payload kind (``"unknown"`` when unrecognised), ``reason``
    says exactly why, ``ident`` is a short identifier or excerpt for logs, and
    ``payload`` is the offending object itself (the item, not its whole page).
    """

    kind: str
    reason: str
    ident: str
    payload: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason} [{self.ident}]"


@dataclass(frozen=True, slots=True)
class Converted:
    """Records converted from one payload, per table, and the rejects."""

    markets: list[MarketRecord] = field(default_factory=list)
    prices: list[PriceSnapshot] = field(default_factory=list)
    orderbooks: list[OrderbookSnapshot] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    resolutions: list[ResolutionRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        """Number of records converted (all tables, rejects not counted)."""
        return (
            len(self.markets)
            + len(self.prices)
            + len(self.orderbooks)
            + len(self.trades)
            + len(self.resolutions)
        )


class _Acc:
    """Mutable accumulator behind :func:`convert`."""

    def __init__(self) -> None:
        self.out = Converted()
        self._fill_counts: dict[str, int] = {}

    def reject(self, kind: str, reason: str, payload: object) -> None:
        self.out.rejects.append(Reject(kind, reason, _ident(payload), payload))

    def add_trade(self, trade: TradeRecord, derived: bool) -> None:
        if derived and trade.trade_id is not None:
            n = self._fill_counts.get(trade.trade_id, 0) + 1
            self._fill_counts[trade.trade_id] = n
            if n > 1:
                trade = trade.model_copy(update={"trade_id": f"{trade.trade_id}-{n}"})
        self.out.trades.append(trade)


def _ident(payload: object) -> str:
    if isinstance(payload, Mapping):
        keys = (
            "event_type",
            "condition_id",
            "conditionId",
            "question_id",
            "market",
            "asset_id",
            "asset",
            "token_id",
            "id",
            "transactionHash",
            "transaction_hash",
            "timestamp",
            "match_time",
        )
        parts = [
            f"{k}={payload[k]}"
            for k in keys
            if k in payload and isinstance(payload[k], str | int | float)
        ]
        if parts:
            return ", ".join(parts)[:200]
        try:
            return json.dumps(payload, default=str)[:120]
        except (TypeError, ValueError):
            return repr(payload)[:120]
    return f"{type(payload).__name__}: {repr(payload)[:120]}"


_WS_EVENTS: Final[Mapping[str, str]] = {
    "book": "ws_book",
    "price_change": "ws_price_change",
    "last_trade_price": "ws_last_trade_price",
    "best_bid_ask": "ws_best_bid_ask",
    "market_resolved": "ws_market_resolved",
    "new_market": "ws_new_market",
    "tick_size_change": "ws_tick_size_change",
    "trade": "ws_trade",
    "order": "ws_order",
}


def detect_kind(payload: object) -> str:
    """Name the kind of a parsed Polymarket payload (one of :data:`KINDS`).

    Takes any parsed JSON value; returns ``"list"`` for an array, ``"page"``
    for a ``{"data": [...]}`` envelope and ``"unknown"`` when nothing matches.
    Never raises.
    """
    if isinstance(payload, list):
        return "list"
    if not isinstance(payload, Mapping):
        return "unknown"
    event_type = payload.get("event_type")
    if event_type is not None:
        return _WS_EVENTS.get(event_type, "unknown") if isinstance(event_type, str) else "unknown"
    keys = payload.keys()
    if "bids" in keys and "asks" in keys:
        return "clob_book"
    if "price_changes" in keys:
        return "ws_price_change"
    if "taker_order_id" in keys or "maker_orders" in keys or "match_time" in keys:
        return "clob_trade"
    if "tokens" in keys and ("condition_id" in keys or "market_slug" in keys):
        return "clob_market"
    if isinstance(payload.get("markets"), list):
        return "gamma_event"
    if "side" in keys and any(
        k in keys for k in ("transactionHash", "transaction_hash", "proxyWallet", "proxy_wallet")
    ):
        return "data_trade"
    if "payouts" in keys or "payout_numerators" in keys:
        return "data_resolution"
    if "status" in keys and any(k in keys for k in RESOLUTION_V2_KEYS):
        return "data_resolution"  # a v2 row without payouts yet (pending, proposed, ...)
    if "conditionId" in keys and any(k in keys for k in ("question", "clobTokenIds", "outcomes")):
        return "gamma_market"
    if "data" in keys and (payload["data"] is None or isinstance(payload["data"], list)):
        return "page"
    return "unknown"


def _unknown_reason(payload: object) -> str:
    if isinstance(payload, Mapping):
        event_type = payload.get("event_type")
        if event_type is not None:
            return f"unknown event_type {event_type!r}: no adapter for it"
        keys = sorted(str(k) for k in payload)
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        return (
            f"unrecognised object with keys [{shown}]: not a Gamma market/event, CLOB "
            "book/market/trade, data-API trade/resolution or WebSocket market-channel event"
        )
    if isinstance(payload, str | bytes):
        return f"expected parsed JSON (an object or array), got {type(payload).__name__} text"
    return f"expected a JSON object or array, got {type(payload).__name__}"


def _market_and_resolution(
    obj: JsonObject,
    acc: _Acc,
    kind: str,
    to_record: Callable[[JsonObject], MarketRecord],
    to_resolution: Callable[[JsonObject], ResolutionRecord | None],
) -> None:
    """The market, and its resolution when it has one; a bad resolution is a
    reject of its own (the market is still kept)."""
    acc.out.markets.append(to_record(obj))
    try:
        resolution = to_resolution(obj)
    except PayloadError as exc:
        acc.reject(kind, exc.reason, obj)
    else:
        if resolution is not None:
            acc.out.resolutions.append(resolution)


def _h_gamma_market(obj: JsonObject, acc: _Acc) -> None:
    _market_and_resolution(
        obj, acc, "gamma_market", gamma_market_to_record, gamma_market_to_resolution
    )


def _h_gamma_event(obj: JsonObject, acc: _Acc) -> None:
    for market in event_markets(obj):
        try:
            _h_gamma_market(market, acc)
        except PayloadError as exc:
            acc.reject("gamma_market", exc.reason, market)


def _h_clob_market(obj: JsonObject, acc: _Acc) -> None:
    _market_and_resolution(
        obj, acc, "clob_market", clob_market_to_record, clob_market_to_resolution
    )


def _h_book(obj: JsonObject, acc: _Acc) -> None:
    acc.out.orderbooks.append(book_to_snapshot(obj))


def _h_price_change(obj: JsonObject, acc: _Acc) -> None:
    snapshots, problems = price_change_parts(obj)
    acc.out.prices.extend(snapshots)
    for asset_id, reason in problems:
        acc.reject("ws_price_change", f"asset_id {asset_id}: {reason}", obj)


def _h_best_bid_ask(obj: JsonObject, acc: _Acc) -> None:
    acc.out.prices.append(best_bid_ask_to_snapshot(obj))


def _h_last_trade_price(obj: JsonObject, acc: _Acc) -> None:
    snapshot = last_trade_price_to_snapshot(obj)
    trade = last_trade_price_to_trade(obj)
    acc.out.prices.append(snapshot)
    acc.add_trade(trade, derived=True)


def _h_market_resolved(obj: JsonObject, acc: _Acc) -> None:
    acc.out.resolutions.append(ws_market_resolved_to_resolution(obj))


def _h_new_market(obj: JsonObject, acc: _Acc) -> None:
    acc.out.markets.append(ws_new_market_to_record(obj))


def _h_tick_size(obj: JsonObject, acc: _Acc) -> None:
    raise payload_error(
        "tick_size_change carries no price, book, trade, market or resolution "
        "(pmstore stores no tick sizes)",
        "ws_tick_size_change",
    )


def _h_order(obj: JsonObject, acc: _Acc) -> None:
    raise payload_error(
        "user-channel order event is not a fill (its trades arrive as trade events)", "ws_order"
    )


def _h_clob_trade(obj: JsonObject, acc: _Acc) -> None:
    trade = clob_trade_to_record(obj)
    acc.add_trade(trade, derived=not isinstance(obj.get("id"), str) or not obj.get("id"))


def _h_data_trade(obj: JsonObject, acc: _Acc) -> None:
    acc.add_trade(data_trade_to_record(obj), derived=True)


def _h_data_resolution(obj: JsonObject, acc: _Acc) -> None:
    acc.out.resolutions.append(data_resolution_to_record(obj))


_HANDLERS: Final[Mapping[str, Callable[[JsonObject, _Acc], None]]] = {
    "gamma_market": _h_gamma_market,
    "gamma_event": _h_gamma_event,
    "clob_market": _h_clob_market,
    "clob_book": _h_book,
    "ws_book": _h_book,
    "ws_price_change": _h_price_change,
    "ws_best_bid_ask": _h_best_bid_ask,
    "ws_last_trade_price": _h_last_trade_price,
    "ws_market_resolved": _h_market_resolved,
    "ws_new_market": _h_new_market,
    "ws_tick_size_change": _h_tick_size,
    "ws_order": _h_order,
    "ws_trade": _h_clob_trade,
    "clob_trade": _h_clob_trade,
    "data_trade": _h_data_trade,
    "data_resolution": _h_data_resolution,
}


def _convert_into(payload: object, acc: _Acc) -> None:
    kind = detect_kind(payload)
    if kind == "list":
        assert isinstance(payload, list)
        for item in payload:
            _convert_into(item, acc)
        return
    if kind == "page":
        assert isinstance(payload, Mapping)
        for item in payload["data"] or ():
            _convert_into(item, acc)
        return
    handler = _HANDLERS.get(kind)
    if handler is None:
        acc.reject("unknown", _unknown_reason(payload), payload)
        return
    assert isinstance(payload, Mapping)
    try:
        handler(payload, acc)
    except PayloadError as exc:
        acc.reject(exc.kind or kind, exc.reason, payload)


def convert(payload: object) -> Converted:
    """Convert any parsed Polymarket payload into pmstore records.

    Takes one payload, a JSON array of payloads or a ``{"data": [...]}`` page
    (converted item by item). Returns a :class:`Converted` with the records
    per table and one :class:`Reject` per payload, or part of one, that could
    not be converted. Never raises for bad input.
    """
    acc = _Acc()
    _convert_into(payload, acc)
    return acc.out
