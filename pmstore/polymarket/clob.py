"""CLOB API adapters: ``/markets`` items, ``/book`` responses (also the WebSocket
``book`` event, same shape) and Trade objects (see docs/polymarket.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from pmstore.models import (
    FIFTY_FIFTY_PAYOUT,
    MarketRecord,
    OrderbookSnapshot,
    ResolutionRecord,
    TradeRecord,
)
from pmstore.polymarket._fields import (
    JsonObject,
    build_record,
    checked_token_id,
    date_part,
    optional_str,
    payload_error,
    payload_mapping,
    required_bool,
    required_number,
    required_str,
    required_token,
)
from pmstore.polymarket._fills import fill_record
from pmstore.polymarket._timestamps import required_ts

__all__ = [
    "book_to_snapshot",
    "clob_market_to_record",
    "clob_market_to_resolution",
    "clob_trade_to_record",
]


def _clob_tokens(market: JsonObject, kind: str) -> list[tuple[str, str, bool]]:
    """(token_id, outcome, winner) of the real tokens; empty-id placeholders skipped."""
    raw = market.get("tokens")
    if raw is None:
        raise payload_error("missing required field 'tokens'", kind)
    if not isinstance(raw, list):
        raise payload_error(f"field 'tokens' must be a list, got {type(raw).__name__}", kind)
    tokens: list[tuple[str, str, bool]] = []
    for i, tok in enumerate(raw):
        if not isinstance(tok, Mapping):
            raise payload_error(f"tokens[{i}] must be an object, got {type(tok).__name__}", kind)
        if tok.get("token_id") in (None, ""):
            continue
        token_id = checked_token_id(tok.get("token_id"), f"tokens[{i}].token_id", kind)
        outcome = tok.get("outcome")
        if not isinstance(outcome, str):
            raise payload_error(f"tokens[{i}].outcome must be a string, got {outcome!r}", kind)
        winner = tok.get("winner", False)
        if not isinstance(winner, bool):
            raise payload_error(f"tokens[{i}].winner must be true or false, got {winner!r}", kind)
        tokens.append((token_id, outcome, winner))
    return tokens


def clob_market_to_record(market: JsonObject) -> MarketRecord:
    """Convert one CLOB ``/markets`` item into a ``MarketRecord``.

    Tokens with an empty ``token_id`` are skipped (``outcomes`` and
    ``clob_token_ids`` are ``None`` when none remain); ``end_date_iso`` is cut
    to its date. Raises ``PayloadError`` (kind ``clob_market``) for an empty or
    missing ``condition_id``, a missing ``question``/``active``/``closed``/
    ``tokens``, or invalid values.
    """
    kind = "clob_market"
    market = payload_mapping(market, kind)
    condition_id = required_str(market, kind, "condition_id")
    tokens = _clob_tokens(market, kind)
    end = optional_str(market, kind, "end_date_iso")
    return build_record(
        MarketRecord,
        kind,
        condition_id=condition_id,
        question=required_str(market, kind, "question"),
        slug=optional_str(market, kind, "market_slug"),
        market_type=None,
        outcomes=[t[1] for t in tokens] or None,
        clob_token_ids=[t[0] for t in tokens] or None,
        active=required_bool(market, kind, "active"),
        closed=required_bool(market, kind, "closed"),
        end_date_iso=date_part(end, "end_date_iso", kind) if end else None,
    )


def clob_market_to_resolution(market: JsonObject) -> ResolutionRecord | None:
    """Derive a resolution from a CLOB ``/markets`` item (``tokens[].winner``).

    Returns ``None`` when the market is not closed, a ``ResolutionRecord`` for
    the token marked ``winner`` or for ``is_50_50_outcome``; raises
    ``PayloadError`` (kind ``clob_market``, reason starting ``"resolution:"``)
    when a closed market names no winner (or several).
    """
    kind = "clob_market"
    market = payload_mapping(market, kind)
    if not required_bool(market, kind, "closed"):
        return None
    condition_id = required_str(market, kind, "condition_id")
    tokens = _clob_tokens(market, kind)
    winners = [t for t in tokens if t[2]]
    if len(winners) > 1:
        raise payload_error(f"resolution: {len(winners)} tokens are marked winner", kind)
    if winners:
        token_id, outcome, _ = winners[0]
        return build_record(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            outcome=outcome or None,
            winner_token_id=token_id,
            payout_price=1.0,
            detection_method="clob_tokens_winner",
            status="resolved",
        )
    if market.get("is_50_50_outcome") is True:
        return build_record(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            payout_price=FIFTY_FIFTY_PAYOUT,
            detection_method="clob_is_50_50_outcome",
            status="resolved",
        )
    raise payload_error(
        "resolution: closed but no token has winner=true and is_50_50_outcome is not true; "
        "CLOB /markets does not always set winner on resolved markets, so no resolution "
        "is recorded (the market record is kept)",
        kind,
    )


def _levels(book: JsonObject, side: str, kind: str) -> list[tuple[float, float]]:
    raw = book.get(side)
    if raw is None:
        raise payload_error(f"missing required field {side!r}", kind)
    if not isinstance(raw, list):
        raise payload_error(f"field {side!r} must be a list, got {type(raw).__name__}", kind)
    levels: list[tuple[float, float]] = []
    for i, level in enumerate(raw):
        if not isinstance(level, Mapping):
            raise payload_error(f"{side}[{i}] must be an object, got {type(level).__name__}", kind)
        price = required_number(level, kind, "price")
        size = required_number(level, kind, "size")
        levels.append((float(price), float(size)))
    return levels


def book_to_snapshot(book: JsonObject) -> OrderbookSnapshot:
    """Convert a CLOB ``/book`` response or a WebSocket ``book`` event.

    Levels (worst-first strings) become float (price, size) pairs; the model
    sorts them best-first and computes spread/midpoint from the best levels
    (``None`` when a side is empty). Raises ``PayloadError`` (kind
    ``clob_book`` or ``ws_book``) for a missing ``asset_id``, ``timestamp``,
    ``bids`` or ``asks``, or an invalid level.
    """
    kind = (
        "ws_book" if isinstance(book, Mapping) and book.get("event_type") == "book" else "clob_book"
    )
    book = payload_mapping(book, kind)
    return build_record(
        OrderbookSnapshot,
        kind,
        ts=required_ts(book, kind, "timestamp"),
        token_id=required_token(book, kind, "asset_id"),
        bids=_levels(book, "bids", kind),
        asks=_levels(book, "asks", kind),
    )


def clob_trade_to_record(trade: JsonObject) -> TradeRecord:
    """Convert a CLOB Trade object (``/data/trades``, user-channel ``trade`` event).

    ``trade_id`` is the trade's ``id`` (derived from ``transaction_hash`` when
    absent); the time is ``match_time`` (seconds, ms or ISO); side is the
    taker's. Raises ``PayloadError`` (kind ``clob_trade``/``ws_trade``) for a
    missing field or a trade whose ``status`` is ``FAILED`` (it did not settle).
    """
    kind = (
        "ws_trade"
        if isinstance(trade, Mapping) and trade.get("event_type") == "trade"
        else "clob_trade"
    )
    trade = payload_mapping(trade, kind)
    status = trade.get("status")
    if isinstance(status, str) and status.upper() == "FAILED":
        raise payload_error("status FAILED: the fill did not settle on chain", kind)
    return fill_record(
        trade,
        kind,
        token_keys=("asset_id",),
        ts_keys=("match_time", "timestamp"),
        hash_keys=("transaction_hash",),
        trade_id=optional_str(trade, kind, "id"),
    )
