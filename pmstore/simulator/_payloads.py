"""Polymarket's payload shapes, built from the simulation's state.

Field names, key order, string numbers and millisecond ``timestamp`` strings
follow the real payloads kept in ``tests/fixtures/polymarket`` (Gamma
``/markets`` items, CLOB ``/book``, the market channel's events) and
Polymarket's documented examples. Hashes are 40 hex digits (SHA-1 of the
content), not Polymarket's own (which nobody can reproduce either).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson

from pmstore.simulator._book import COARSE_TICK, ONE, Side, price_text, size_text
from pmstore.simulator._market import Market, Tag, iso_ms

__all__ = [
    "Emission",
    "best_bid_ask",
    "book_hash",
    "gamma_market",
    "last_trade_price",
    "legacy_price_change",
    "market_resolved",
    "new_market",
    "price_change",
    "price_change_entry",
    "rest_book",
    "tick_size_change",
    "tick_text",
    "ws_book",
]

Payload = dict[str, Any]

_IMAGE: Final = "https://polymarket-upload.s3.us-east-2.amazonaws.com/simulated.png"


@dataclass(frozen=True, slots=True)
class Emission:
    """One event for the market channel and where it goes.

    ``assets``: it goes to the sockets subscribed to any of them (a
    ``price_change`` is cut down to each socket's assets). ``custom``: only to
    sockets with ``custom_feature_enabled``. ``broadcast``: to every such
    socket, whatever its assets (``new_market``).
    """

    payload: Payload
    assets: tuple[str, ...]
    custom: bool = False
    broadcast: bool = False

    @property
    def event_type(self) -> str:
        """The payload's ``event_type``."""
        return str(self.payload.get("event_type", ""))


def tick_text(tick: int) -> str:
    """``"0.01"`` or ``"0.001"``."""
    return "0.01" if tick == COARSE_TICK else "0.001"


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _seconds_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha1(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


def book_hash(market: Market, outcome: int, timestamp: str) -> str:
    """40 hex digits: SHA-1 of the book's content at ``timestamp``."""
    bids, asks = market.book.worst_first(outcome)
    body = orjson.dumps(
        {
            "market": market.condition_id,
            "asset_id": market.token_ids[outcome],
            "timestamp": timestamp,
            "hash": "",
            "bids": bids,
            "asks": asks,
            "tick_size": tick_text(market.tick),
        }
    )
    return hashlib.sha1(body, usedforsecurity=False).hexdigest()


def _last_trade_text(market: Market, outcome: int) -> str:
    if market.last_trade is None:
        return ""
    return price_text(market.last_trade if outcome == 0 else ONE - market.last_trade)


def rest_book(market: Market, outcome: int, now_ms: int) -> Payload:
    """CLOB ``GET /book`` (and each item of ``POST /books``)."""
    timestamp = str(now_ms)
    bids, asks = market.book.worst_first(outcome)
    return {
        "market": market.condition_id,
        "asset_id": market.token_ids[outcome],
        "timestamp": timestamp,
        "hash": book_hash(market, outcome, timestamp),
        "bids": bids,
        "asks": asks,
        "min_order_size": str(market.min_order_size),
        "tick_size": tick_text(market.tick),
        "neg_risk": market.neg_risk,
        "last_trade_price": _last_trade_text(market, outcome),
    }


def ws_book(market: Market, outcome: int, now_ms: int, *, first: bool) -> Payload:
    """The channel's ``book`` event; ``last_trade_price`` only in the snapshot sent on
    subscription (``first``), as Polymarket does."""
    timestamp = str(now_ms)
    bids, asks = market.book.worst_first(outcome)
    payload: Payload = {
        "market": market.condition_id,
        "asset_id": market.token_ids[outcome],
        "timestamp": timestamp,
        "hash": book_hash(market, outcome, timestamp),
        "bids": bids,
        "asks": asks,
        "tick_size": tick_text(market.tick),
        "event_type": "book",
    }
    if first:
        payload["last_trade_price"] = _last_trade_text(market, outcome)
    return payload


def price_change_entry(
    market: Market, outcome: int, side: Side, price: int, size: int, serial: int
) -> Payload:
    """One ``price_changes[]`` entry: the new total ``size`` at ``price`` (``"0"`` removes the
    level) and the asset's best bid and ask after the change."""
    best_bid, best_ask = market.book.best_texts(outcome)
    asset = market.token_ids[outcome]
    return {
        "asset_id": asset,
        "price": price_text(price),
        "size": size_text(size),
        "side": side,
        "hash": _sha1(market.condition_id, asset, side, price, size, serial),
        "best_bid": best_bid,
        "best_ask": best_ask,
    }


def price_change(market: Market, entries: list[Payload], now_ms: int) -> Payload:
    """A ``price_change`` event in its current shape (since 2025-09-15)."""
    return {
        "market": market.condition_id,
        "price_changes": entries,
        "timestamp": str(now_ms),
        "event_type": "price_change",
    }


def legacy_price_change(
    market: Market, outcome: int, changes: list[Payload], now_ms: int
) -> Payload:
    """A ``price_change`` in the shape it had until 2025-09-15: one asset, ``changes[]`` of
    ``{price, side, size}``, no best bid or ask."""
    timestamp = str(now_ms)
    return {
        "asset_id": market.token_ids[outcome],
        "changes": changes,
        "event_type": "price_change",
        "hash": book_hash(market, outcome, timestamp),
        "market": market.condition_id,
        "timestamp": timestamp,
    }


def last_trade_price(
    market: Market, outcome: int, side: Side, price: int, size: int, now_ms: int, tx: str
) -> Payload:
    """A ``last_trade_price`` event (``side`` is the taker's)."""
    return {
        "asset_id": market.token_ids[outcome],
        "event_type": "last_trade_price",
        "fee_rate_bps": "0",
        "market": market.condition_id,
        "price": price_text(price),
        "side": side,
        "size": size_text(size),
        "timestamp": str(now_ms),
        "transaction_hash": tx,
    }


def tick_size_change(market: Market, outcome: int, old: int, new: int, now_ms: int) -> Payload:
    """A ``tick_size_change`` event."""
    return {
        "asset_id": market.token_ids[outcome],
        "event_type": "tick_size_change",
        "market": market.condition_id,
        "new_tick_size": tick_text(new),
        "old_tick_size": tick_text(old),
        "timestamp": str(now_ms),
    }


def best_bid_ask(market: Market, outcome: int, now_ms: int) -> Payload:
    """A ``best_bid_ask`` event (custom feature)."""
    bid, ask = market.book.best(outcome)
    bid_text, ask_text = market.book.best_texts(outcome)
    spread = (ask if ask is not None else ONE) - (bid if bid is not None else 0)
    return {
        "event_type": "best_bid_ask",
        "market": market.condition_id,
        "asset_id": market.token_ids[outcome],
        "best_bid": bid_text,
        "best_ask": ask_text,
        "spread": price_text(spread),
        "timestamp": str(now_ms),
    }


def _event_message(market: Market) -> Payload:
    return {
        "id": str(market.event_id),
        "ticker": market.slug,
        "slug": market.slug,
        "title": market.question,
        "description": market.description,
    }


def new_market(market: Market, now_ms: int) -> Payload:
    """A ``new_market`` event (custom feature), in the documented shape."""
    return {
        "event_type": "new_market",
        "id": str(market.gamma_id),
        "question": market.question,
        "market": market.condition_id,
        "slug": market.slug,
        "description": market.description,
        "assets_ids": list(market.token_ids),
        "outcomes": list(market.outcomes),
        "event_message": _event_message(market),
        "timestamp": str(now_ms),
        "tags": [tag.slug for tag in market.tags],
        "condition_id": market.condition_id,
        "active": True,
        "clob_token_ids": list(market.token_ids),
        "sports_market_type": "",
        "line": "",
        "game_start_time": "",
        "order_price_min_tick_size": tick_text(market.tick),
        "group_item_title": "",
    }


def market_resolved(market: Market, now_ms: int) -> Payload:
    """A ``market_resolved`` event (custom feature); the market must have a winner."""
    assert market.winner is not None
    return {
        "id": str(market.gamma_id),
        "question": market.question,
        "market": market.condition_id,
        "slug": market.slug,
        "description": market.description,
        "assets_ids": list(market.token_ids),
        "outcomes": list(market.outcomes),
        "winning_asset_id": market.token_ids[market.winner],
        "winning_outcome": market.outcomes[market.winner],
        "event_message": _event_message(market),
        "timestamp": str(now_ms),
        "event_type": "market_resolved",
        "tags": [tag.slug for tag in market.tags],
    }


def _gamma_tag(tag: Tag) -> Payload:
    return {
        "id": tag.id,
        "label": tag.label,
        "slug": tag.slug,
        "forceShow": False,
        "createdAt": "2024-03-07T20:41:56.773Z",
        "updatedAt": "2026-03-09T22:35:06.772403Z",
        "requiresTranslation": False,
    }


def _gamma_event(market: Market, now_ms: int, liquidity: float, volume: float) -> Payload:
    return {
        "id": str(market.event_id),
        "ticker": market.slug,
        "slug": market.slug,
        "title": market.question,
        "description": market.description,
        "resolutionSource": "",
        "startDate": iso_ms(market.created_ms),
        "creationDate": iso_ms(market.created_ms),
        "endDate": _seconds_iso(market.end_ms),
        "image": _IMAGE,
        "icon": _IMAGE,
        "active": True,
        "closed": market.closed,
        "archived": False,
        "new": False,
        "featured": False,
        "restricted": True,
        "liquidity": liquidity,
        "volume": volume,
        "openInterest": 0,
        "createdAt": iso_ms(market.created_ms),
        "updatedAt": iso_ms(now_ms),
        "competitive": 0.9,
        "volume24hr": volume,
        "volume1wk": volume,
        "volume1mo": volume,
        "volume1yr": volume,
        "enableOrderBook": True,
        "liquidityClob": liquidity,
        "negRisk": market.neg_risk,
        "commentCount": 0,
        "tags": [_gamma_tag(tag) for tag in market.tags],
        "cyom": False,
        "showAllOutcomes": True,
        "showMarketImages": True,
        "enableNegRisk": market.neg_risk,
        "automaticallyActive": True,
        "negRiskAugmented": False,
        "pendingDeployment": False,
        "deploying": False,
        "requiresTranslation": False,
    }


def gamma_market(market: Market, now_ms: int) -> Payload:
    """A Gamma ``/markets`` item: ``outcomes``, ``outcomePrices`` and ``clobTokenIds`` are
    JSON-encoded strings; a resolved market is ``closed`` with prices ``"1"``/``"0"`` and
    ``umaResolutionStatus`` ``"resolved"``."""
    bid, ask = market.book.best(0)
    if market.winner is not None:
        prices = ["1", "0"] if market.winner == 0 else ["0", "1"]
    else:
        yes = Decimal(str(market.mid()))
        prices = [_decimal_text(yes), _decimal_text(1 - yes)]
    book = market.book
    liquidity = round(
        sum(p * s for p, s in book.bids.items()) / (ONE * 100)
        + sum((ONE - p) * s for p, s in book.asks.items()) / (ONE * 100),
        4,
    )
    volume = market.volume / 100
    tick = COARSE_TICK / ONE if market.tick == COARSE_TICK else 1 / ONE
    accepting = market.booked and not market.closed
    item: Payload = {
        "id": str(market.gamma_id),
        "question": market.question,
        "conditionId": market.condition_id,
        "slug": market.slug,
        "resolutionSource": "",
        "endDate": _seconds_iso(market.end_ms),
        "liquidity": f"{liquidity}",
        "startDate": iso_ms(market.created_ms),
        "image": _IMAGE,
        "icon": _IMAGE,
        "description": market.description,
        "outcomes": json.dumps(list(market.outcomes)),
        "outcomePrices": json.dumps(prices),
        "volume": f"{volume}",
        "active": True,
        "closed": market.closed,
        "marketMakerAddress": "",
        "createdAt": iso_ms(market.created_ms),
        "updatedAt": iso_ms(now_ms),
        "new": False,
        "featured": False,
        "archived": False,
        "restricted": True,
        "groupItemThreshold": "0",
        "questionID": market.question_id,
        "enableOrderBook": True,
        "orderPriceMinTickSize": tick,
        "orderMinSize": market.min_order_size,
        "volumeNum": volume,
        "liquidityNum": liquidity,
        "endDateIso": _seconds_iso(market.end_ms)[:10],
        "startDateIso": iso_ms(market.created_ms)[:10],
        "hasReviewedDates": True,
        "volume24hr": volume,
        "volume1wk": volume,
        "volume1mo": volume,
        "volume1yr": volume,
        "clobTokenIds": json.dumps(list(market.token_ids)),
        "umaBond": "500",
        "umaReward": "5",
        "volume24hrClob": volume,
        "volume1wkClob": volume,
        "volume1moClob": volume,
        "volume1yrClob": volume,
        "volumeClob": volume,
        "liquidityClob": liquidity,
        "customLiveness": 0,
        "makerBaseFee": 0,
        "takerBaseFee": 0,
        "acceptingOrders": accepting,
        "negRisk": market.neg_risk,
        "negRiskRequestID": "",
        "events": [_gamma_event(market, now_ms, liquidity, volume)],
        "ready": False,
        "funded": False,
        "acceptingOrdersTimestamp": _seconds_iso(market.bookable_ms),
        "cyom": False,
        "competitive": 0.9,
        "pagerDutyNotificationEnabled": False,
        "approved": True,
        "rewardsMinSize": 50,
        "rewardsMaxSpread": 4.5,
    }
    if bid is not None and ask is not None and not market.closed:
        item["spread"] = (ask - bid) / ONE
    if market.last_trade is not None:
        item["lastTradePrice"] = market.last_trade / ONE
    if bid is not None and not market.closed:
        item["bestBid"] = bid / ONE
    if ask is not None and not market.closed:
        item["bestAsk"] = ask / ONE
    item.update(
        {
            "automaticallyActive": True,
            "clearBookOnStart": False,
            "showGmpSeries": False,
            "showGmpOutcome": False,
            "manualActivation": False,
            "negRiskOther": False,
            "umaResolutionStatuses": "[]",
            "pendingDeployment": False,
            "deploying": False,
            "rfqEnabled": False,
            "holdingRewardsEnabled": False,
            "feesEnabled": False,
            "requiresTranslation": False,
        }
    )
    if market.closed and market.closed_ms is not None:
        closed_at = datetime.fromtimestamp(market.closed_ms / 1000, tz=UTC)
        item["closedTime"] = closed_at.strftime("%Y-%m-%d %H:%M:%S+00")
        item["umaEndDate"] = _seconds_iso(market.closed_ms)
        item["umaResolutionStatus"] = "resolved"
        item["umaResolutionStatuses"] = '["proposed"]'
        item["automaticallyResolved"] = True
        item["resolvedBy"] = "0x65070BE91477460D8A7AeEb94ef92fe056C2f2A7"
    return item
