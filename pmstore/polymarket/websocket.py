"""WebSocket market-channel adapters: ``new_market``, ``price_change``,
``best_bid_ask``, ``last_trade_price`` and ``market_resolved`` events (see
docs/polymarket.md, *Price rule*).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pmstore.errors import PayloadError
from pmstore.models import (
    MarketRecord,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
)
from pmstore.polymarket._fields import (
    JsonObject,
    build_record,
    checked_token_id,
    decimal_value,
    first_present,
    optional_str,
    payload_error,
    payload_mapping,
    required_number,
    required_str,
    required_token,
    str_list,
    token_list,
)
from pmstore.polymarket._fills import fill_record
from pmstore.polymarket._timestamps import required_ts

__all__ = [
    "NO_TOP_OF_BOOK",
    "best_bid_ask_to_snapshot",
    "last_trade_price_to_snapshot",
    "last_trade_price_to_trade",
    "price_change_to_snapshots",
    "ws_market_resolved_to_resolution",
    "ws_new_market_to_record",
]


NO_TOP_OF_BOOK: Final = "price_change without best_bid/best_ask carries no top-of-book price"


def ws_new_market_to_record(message: JsonObject) -> MarketRecord:
    """Convert a WebSocket ``new_market`` event into a ``MarketRecord``.

    ``closed`` is False (the event announces a new market) and ``active`` is
    taken from the event (True when absent). Raises ``PayloadError`` (kind
    ``ws_new_market``) for a missing condition id or question.
    """
    kind = "ws_new_market"
    message = payload_mapping(message, kind)
    active = message.get("active", True)
    if not isinstance(active, bool):
        raise payload_error(f"field 'active' must be true or false, got {active!r}", kind)
    _, raw_tokens = first_present(message, ("clob_token_ids", "assets_ids"))
    return build_record(
        MarketRecord,
        kind,
        condition_id=required_str(message, kind, "condition_id", "market"),
        question=required_str(message, kind, "question"),
        slug=optional_str(message, kind, "slug"),
        outcomes=str_list(message.get("outcomes"), "outcomes", kind),
        clob_token_ids=token_list(raw_tokens, "clob_token_ids", kind),
        active=active,
        closed=False,
    )


def best_midpoint(entry: JsonObject, kind: str) -> float:
    """Midpoint of ``best_bid``/``best_ask``; PayloadError when a side is absent."""
    bid_raw, ask_raw = entry.get("best_bid"), entry.get("best_ask")
    if bid_raw in (None, "") and ask_raw in (None, ""):
        raise payload_error(
            NO_TOP_OF_BOOK if kind == "ws_price_change" else "missing best_bid and best_ask", kind
        )
    if bid_raw in (None, ""):
        raise payload_error("one-sided top of book: best_bid is missing, no midpoint", kind)
    if ask_raw in (None, ""):
        raise payload_error("one-sided top of book: best_ask is missing, no midpoint", kind)
    bid = decimal_value(bid_raw, "best_bid", kind)
    ask = decimal_value(ask_raw, "best_ask", kind)
    if bid <= 0:
        raise payload_error(
            f"one-sided top of book: best_bid {bid_raw!r} means no bids, no midpoint", kind
        )
    if ask >= 1:
        raise payload_error(
            f"one-sided top of book: best_ask {ask_raw!r} means no asks, no midpoint", kind
        )
    return float((bid + ask) / 2)


def price_change_parts(message: JsonObject) -> tuple[list[PriceSnapshot], list[tuple[str, str]]]:
    """Snapshots per asset, and (asset_id, reason) for the assets rejected."""
    kind = "ws_price_change"
    message = payload_mapping(message, kind)
    changes = message.get("price_changes")
    if changes is None:
        # Flat (to 2024) or changes[] (late 2024 to mid-Sept 2025): one level, no top.
        shape = "changes[]" if "changes" in message else "flat"
        raise payload_error(f"{NO_TOP_OF_BOOK} (old {shape} shape)", kind)
    if not isinstance(changes, list):
        raise payload_error(
            f"field 'price_changes' must be a list, got {type(changes).__name__}", kind
        )
    ts = required_ts(message, kind, "timestamp")
    last: dict[str, JsonObject] = {}
    for i, entry in enumerate(changes):
        if not isinstance(entry, Mapping):
            raise payload_error(
                f"price_changes[{i}] must be an object, got {type(entry).__name__}", kind
            )
        _, raw_asset = first_present(entry, ("asset_id",))
        if raw_asset is None:
            raise payload_error(f"missing required field 'price_changes[{i}].asset_id'", kind)
        last[checked_token_id(raw_asset, f"price_changes[{i}].asset_id", kind)] = entry
    snapshots: list[PriceSnapshot] = []
    problems: list[tuple[str, str]] = []
    for asset_id, entry in last.items():
        try:
            price = best_midpoint(entry, kind)
            snapshots.append(
                build_record(PriceSnapshot, kind, ts=ts, token_id=asset_id, price=price)
            )
        except PayloadError as exc:
            problems.append((asset_id, exc.reason))
    return snapshots, problems


def price_change_to_snapshots(message: JsonObject) -> list[PriceSnapshot]:
    """Convert a WebSocket ``price_change`` (newest shape) into price snapshots.

    Returns one midpoint ``PriceSnapshot`` per asset (from that asset's last
    entry). Raises ``PayloadError`` (kind ``ws_price_change``) for the older
    shapes (no top of book) and when any asset's top of book is unusable;
    :func:`convert` keeps the good assets and rejects only the bad ones.
    """
    snapshots, problems = price_change_parts(message)
    if problems:
        asset_id, reason = problems[0]
        raise payload_error(f"asset_id {asset_id}: {reason}", "ws_price_change")
    return snapshots


def best_bid_ask_to_snapshot(message: JsonObject) -> PriceSnapshot:
    """Convert a WebSocket ``best_bid_ask`` event into a midpoint ``PriceSnapshot``.

    Raises ``PayloadError`` (kind ``ws_best_bid_ask``) for a missing field or a
    one-sided top of book.
    """
    kind = "ws_best_bid_ask"
    message = payload_mapping(message, kind)
    return build_record(
        PriceSnapshot,
        kind,
        ts=required_ts(message, kind, "timestamp"),
        token_id=required_token(message, kind, "asset_id"),
        price=best_midpoint(message, kind),
    )


def last_trade_price_to_snapshot(message: JsonObject) -> PriceSnapshot:
    """Convert a WebSocket ``last_trade_price`` event into a ``PriceSnapshot``.

    The price is the trade price. Raises ``PayloadError`` (kind
    ``ws_last_trade_price``) for a missing ``asset_id``, ``price`` or ``timestamp``.
    """
    kind = "ws_last_trade_price"
    message = payload_mapping(message, kind)
    return build_record(
        PriceSnapshot,
        kind,
        ts=required_ts(message, kind, "timestamp"),
        token_id=required_token(message, kind, "asset_id"),
        price=float(required_number(message, kind, "price")),
    )


def last_trade_price_to_trade(message: JsonObject) -> TradeRecord:
    """Convert a WebSocket ``last_trade_price`` event into the fill it reports.

    ``trade_id`` is derived from ``transaction_hash`` when the event has one,
    else from the millisecond timestamp. Raises ``PayloadError`` (kind
    ``ws_last_trade_price``) for a missing asset, side, price, size or timestamp.
    """
    kind = "ws_last_trade_price"
    message = payload_mapping(message, kind)
    return fill_record(
        message,
        kind,
        token_keys=("asset_id",),
        ts_keys=("timestamp",),
        hash_keys=("transaction_hash", "transactionHash"),
    )


def ws_market_resolved_to_resolution(message: JsonObject) -> ResolutionRecord:
    """Convert a WebSocket ``market_resolved`` event into a ``ResolutionRecord``.

    Winner ``winning_asset_id`` (payout 1.0), outcome ``winning_outcome``,
    resolved at ``timestamp``. Raises ``PayloadError`` (kind
    ``ws_market_resolved``) when ``market``, ``winning_asset_id`` or
    ``timestamp`` is missing.
    """
    kind = "ws_market_resolved"
    message = payload_mapping(message, kind)
    return build_record(
        ResolutionRecord,
        kind,
        condition_id=required_str(message, kind, "market", "condition_id"),
        outcome=optional_str(message, kind, "winning_outcome"),
        winner_token_id=required_token(message, kind, "winning_asset_id"),
        resolved_at=required_ts(message, kind, "timestamp"),
        payout_price=1.0,
        detection_method="ws_market_resolved",
        status="resolved",
    )
