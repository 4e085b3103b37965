"""Adapters from Polymarket API payloads (parsed JSON) to pmstore records.

Pure functions, no I/O: each takes what ``json.loads`` returned for one
Polymarket payload and returns the pydantic records of :mod:`pmstore.models`.
:func:`convert` is the entry point for mixed input: it recognises the payload
(:func:`detect_kind`), converts it, and collects every payload (or part of one)
it cannot convert as a :class:`Reject` with a precise reason, so nothing is
dropped silently. The single-kind functions raise
:class:`pmstore.errors.PayloadError` instead.

One module per source: :mod:`~pmstore.polymarket.gamma`,
:mod:`~pmstore.polymarket.clob`, :mod:`~pmstore.polymarket.websocket`,
:mod:`~pmstore.polymarket.data_api`; shared field parsing in
:mod:`~pmstore.polymarket._fields`, the timestamp rule in
:mod:`~pmstore.polymarket._timestamps`, fill ids in
:mod:`~pmstore.polymarket._fills`, and :func:`detect_kind`/:func:`convert` in
:mod:`~pmstore.polymarket._dispatch`.

The payload rules (kinds recognised, quirks, the timestamp, price and trade-id
rules, resolutions) are in ``docs/polymarket.md``.
"""

from __future__ import annotations

from pmstore.polymarket._dispatch import KINDS, Converted, Reject, convert, detect_kind
from pmstore.polymarket._fills import derive_fill_id
from pmstore.polymarket._timestamps import parse_timestamp
from pmstore.polymarket.clob import (
    book_to_snapshot,
    clob_market_to_record,
    clob_market_to_resolution,
    clob_trade_to_record,
)
from pmstore.polymarket.data_api import data_resolution_to_record, data_trade_to_record
from pmstore.polymarket.gamma import (
    gamma_event_to_records,
    gamma_market_to_record,
    gamma_market_to_resolution,
)
from pmstore.polymarket.websocket import NO_TOP_OF_BOOK as NO_TOP_OF_BOOK
from pmstore.polymarket.websocket import (
    best_bid_ask_to_snapshot,
    last_trade_price_to_snapshot,
    last_trade_price_to_trade,
    price_change_to_snapshots,
    ws_market_resolved_to_resolution,
    ws_new_market_to_record,
)

__all__ = [
    "KINDS",
    "Converted",
    "Reject",
    "best_bid_ask_to_snapshot",
    "book_to_snapshot",
    "clob_market_to_record",
    "clob_market_to_resolution",
    "clob_trade_to_record",
    "convert",
    "data_resolution_to_record",
    "data_trade_to_record",
    "derive_fill_id",
    "detect_kind",
    "gamma_event_to_records",
    "gamma_market_to_record",
    "gamma_market_to_resolution",
    "last_trade_price_to_snapshot",
    "last_trade_price_to_trade",
    "parse_timestamp",
    "price_change_to_snapshots",
    "ws_market_resolved_to_resolution",
    "ws_new_market_to_record",
]
