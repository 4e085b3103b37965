"""Columnar fast path of the Polymarket adapters for the hot WebSocket kinds.

:func:`convert_into` (a parsed payload) and :func:`convert_line` (a JSON
text) give exactly what :func:`pmstore.polymarket.convert` gives (the same
rows, values, order and rejects with the same reasons), but append straight
into column lists (:class:`Columns`) instead of building a pydantic model
per record: ``price_change`` (newest shape), ``book`` and
``last_trade_price`` events are read as typed structs
(:mod:`pmstore.polymarket._hot_events`, msgspec) and take the fast path;
every other payload, and any hot one with something unusual in it (a
missing or odd field, a one-sided top of book, a value out of range), goes
through ``convert`` unchanged, so the validation rules and reject reasons
are those of the adapters by construction. A test runs both paths over the
same payloads and lines.

Why it is the same: token ids must be ``str`` of ASCII digits (anything
else falls back); numbers must be ``str`` or ``float`` (``float(text)`` is
the correctly rounded value, as the adapters' ``float(Decimal(text))``;
msgspec parses level texts to that same value); timestamps must be strings
of digits, converted with the same seconds / milliseconds rule; midpoints
are computed by the adapters' own ``best_midpoint`` (exact decimal
arithmetic), cached per (bid, ask) text pair; book levels are put
best-first in the order of the model's own (stable) sort, for a whole
batch at once (``levels.best_first_order``).

Book levels stay flat: per book, the adapter appends its sides' prices and
sizes (as received, range checked by the decode) to flat float arrays plus
one count per side, and leaves spread and midpoint to the batch; the batch
turns them into numpy arrays once and carries them as
``OrderbookBatch.levels``, so its checks, digest and COPY encoding never walk
per-level tuples.
"""

from __future__ import annotations

import functools
import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Final

import numpy as np
import orjson

from pmstore._utc import UNIX_EPOCH
from pmstore.batches import TS_DTYPE, OrderbookBatch, PriceBatch, TradeBatch, derive_trade_id
from pmstore.batches._levels import BookLevels, FlatLevels, best_first, best_prices, top_of_book
from pmstore.errors import PayloadError
from pmstore.models import MarketRecord, ResolutionRecord
from pmstore.polymarket._dispatch import Converted, Reject, convert
from pmstore.polymarket._fills import derive_fill_id
from pmstore.polymarket._hot_events import (
    HOT_KINDS,
    HotEvent,
    LastTradePrice,
    OrderBook,
    PriceChange,
    PriceEntry,
    decode_line,
    from_payload,
)
from pmstore.polymarket._timestamps import MILLIS_BELOW, SECONDS_BELOW
from pmstore.polymarket.websocket import best_midpoint

__all__ = ["Columns", "append_hot_line", "convert_into", "convert_line"]


_ONE_US: Final = timedelta(microseconds=1)
_MIDPOINT_CACHE_SIZE: Final = 1 << 16
_TOKEN_CACHE_SIZE: Final = 1 << 14
_TOKEN_MAX_CHARS: Final = 100
"""Longer token ids take the general path (real ones have 74-78 digits): the cache of
checked ids stays small whatever a file holds."""


@dataclass(slots=True)
class Columns:
    """Records of the three COPY tables as column lists, plus markets, resolutions, rejects.

    ``*_ts`` hold integer microseconds since 1970 UTC. Order-book sides are
    flat: ``book_bid_counts[i]`` levels of book i, in the order received, in
    ``book_bid_prices``/``book_bid_sizes`` after those of the books before it
    (asks alike); spread and midpoint are NaN where neither is known yet (the
    fast path's books: ``orderbook_batch`` derives them from the best levels;
    they stay NaN for an empty or one-sided book).
    The level columns are ``array("d")``: a level's floats are unboxed as they
    are appended, and the batch takes them as one buffer.
    """

    price_ts: list[int] = field(default_factory=list)
    price_token: list[str] = field(default_factory=list)
    price_value: list[float] = field(default_factory=list)
    book_ts: list[int] = field(default_factory=list)
    book_token: list[str] = field(default_factory=list)
    book_bid_counts: list[int] = field(default_factory=list)
    book_ask_counts: list[int] = field(default_factory=list)
    book_bid_prices: array[float] = field(default_factory=lambda: array("d"))
    book_bid_sizes: array[float] = field(default_factory=lambda: array("d"))
    book_ask_prices: array[float] = field(default_factory=lambda: array("d"))
    book_ask_sizes: array[float] = field(default_factory=lambda: array("d"))
    book_spread: list[float] = field(default_factory=list)
    book_midpoint: list[float] = field(default_factory=list)
    trade_ts: list[int] = field(default_factory=list)
    trade_token: list[str] = field(default_factory=list)
    trade_side: list[str] = field(default_factory=list)
    trade_price: list[float] = field(default_factory=list)
    trade_size: list[float] = field(default_factory=list)
    trade_id: list[str] = field(default_factory=list)
    markets: list[MarketRecord] = field(default_factory=list)
    resolutions: list[ResolutionRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    general_path: int = 0
    """Payloads of the hot kinds that took the general path (something unusual in them):
    a count that grows with every payload means a changed Polymarket field (slower, still
    exact)."""

    def counts(self) -> dict[str, int]:
        """Records per table (and rejects)."""
        return {
            "price_snapshots": len(self.price_ts),
            "orderbook_snapshots": len(self.book_ts),
            "trades": len(self.trade_ts),
            "markets": len(self.markets),
            "resolutions": len(self.resolutions),
            "rejects": len(self.rejects),
        }

    def record_count(self) -> int:
        """Records of all five tables (rejects not counted)."""
        return (
            len(self.price_ts)
            + len(self.book_ts)
            + len(self.trade_ts)
            + len(self.markets)
            + len(self.resolutions)
        )

    def extend(self, other: Columns, tables: set[str]) -> None:
        """Append ``other``'s records of ``tables`` (table names, and ``rejects``), and add
        its ``general_path`` count."""
        self.general_path += other.general_path
        for table, names in _FIELDS.items():
            if (table if table != "book_levels" else "orderbook_snapshots") in tables:
                for name in names:
                    getattr(self, name).extend(getattr(other, name))

    def price_batch(self) -> PriceBatch:
        """The price rows as a PriceBatch (no copy of the checks: rows are valid)."""
        n = len(self.price_ts)
        return PriceBatch(
            ts=_ts(self.price_ts),
            token_id=_objects(self.price_token),
            price=np.array(self.price_value, dtype=np.float64),
            volume_24h=np.full(n, np.nan),
        )

    def orderbook_batch(self) -> OrderbookBatch:
        """The book rows as an OrderbookBatch carrying its levels in flat form.

        Levels are put best-first for all books at once (reversed where sent
        worst-first, else sorted stably, as the model sorts); spread and
        midpoint, where neither is known (the fast path's books), come from
        the best levels as the model derives them. Costs a few
        numpy passes over the levels (``bids``/``asks`` tuples are made only if read)."""
        levels = BookLevels(
            _flat_side(self.book_bid_counts, self.book_bid_prices, self.book_bid_sizes, True),
            _flat_side(self.book_ask_counts, self.book_ask_prices, self.book_ask_sizes, False),
        )
        spread, midpoint = top_of_book(
            np.array(self.book_spread, dtype=np.float64),
            np.array(self.book_midpoint, dtype=np.float64),
            best_prices(levels.bids),
            best_prices(levels.asks),
        )
        return OrderbookBatch.from_flat(
            ts=_ts(self.book_ts),
            token_id=_objects(self.book_token),
            levels=levels,
            spread=spread,
            midpoint=midpoint,
        )

    def trade_batch(self) -> TradeBatch:
        """The trade rows as a TradeBatch."""
        return TradeBatch(
            ts=_ts(self.trade_ts),
            token_id=_objects(self.trade_token),
            side=_objects(self.trade_side),
            price=np.array(self.trade_price, dtype=np.float64),
            size=np.array(self.trade_size, dtype=np.float64),
            trade_id=_objects(self.trade_id),
        )

    def add_converted(self, got: Converted) -> None:
        """Append the records ``convert`` made (the slow path)."""
        for p in got.prices:
            self.price_ts.append(_micros(p.ts))
            self.price_token.append(p.token_id)
            self.price_value.append(p.price)
        for b in got.orderbooks:
            self.book_ts.append(_micros(b.ts))
            self.book_token.append(b.token_id)
            self.book_bid_counts.append(len(b.bids))
            self.book_bid_prices.extend([p for p, _ in b.bids])
            self.book_bid_sizes.extend([q for _, q in b.bids])
            self.book_ask_counts.append(len(b.asks))
            self.book_ask_prices.extend([p for p, _ in b.asks])
            self.book_ask_sizes.extend([q for _, q in b.asks])
            self.book_spread.append(math.nan if b.spread is None else b.spread)
            self.book_midpoint.append(math.nan if b.midpoint is None else b.midpoint)
        for t in got.trades:
            ts = _micros(t.ts)
            self.trade_ts.append(ts)
            self.trade_token.append(t.token_id)
            self.trade_side.append(t.side)
            self.trade_price.append(t.price)
            self.trade_size.append(t.size)
            self.trade_id.append(
                t.trade_id
                if t.trade_id is not None
                else derive_trade_id(t.token_id, ts, t.side, t.price, t.size)
            )
        self.markets.extend(got.markets)
        self.resolutions.extend(got.resolutions)
        self.rejects.extend(got.rejects)


_FIELDS: Final = {
    "price_snapshots": ("price_ts", "price_token", "price_value"),
    "orderbook_snapshots": (
        "book_ts",
        "book_token",
        "book_bid_counts",
        "book_ask_counts",
        "book_spread",
        "book_midpoint",
    ),
    "trades": ("trade_ts", "trade_token", "trade_side", "trade_price", "trade_size", "trade_id"),
    "book_levels": ("book_bid_prices", "book_bid_sizes", "book_ask_prices", "book_ask_sizes"),
    "markets": ("markets",),
    "resolutions": ("resolutions",),
    "rejects": ("rejects",),
}


def _flat_side(
    counts: list[int], prices: array[float], sizes: array[float], descending: bool
) -> FlatLevels:
    """One side of every book as flat arrays, best-first."""
    flat = FlatLevels(
        np.array(counts, dtype=np.int64).reshape(len(counts)),
        np.array(prices, dtype=np.float64),  # a copy of the buffer
        np.array(sizes, dtype=np.float64),
    )
    return best_first(flat, descending)


def _ts(micros: list[int]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return np.array(micros, dtype=np.int64).view(TS_DTYPE)


def _objects(items: list[Any]) -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.fromiter(items, dtype=object, count=len(items))


def _micros(ts: datetime) -> int:
    return (ts - UNIX_EPOCH) // _ONE_US


class _FallbackError(Exception):
    """Something unusual: let ``convert`` handle the whole payload."""


def _unix_micros(value: str) -> int:
    """Microseconds of a Unix-time string of digits; _FallbackError for anything else."""
    if value.isdigit() and value.isascii():
        number = int(value)
    else:
        raise _FallbackError
    if number <= 0:
        raise _FallbackError
    if number < SECONDS_BELOW:
        return number * 1_000_000
    if number < MILLIS_BELOW:
        return number * 1_000
    raise _FallbackError


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _is_token_text(text: str) -> bool:
    """True for a non-empty string of ASCII digits. Cached: a stream repeats a few thousand
    token ids, and a lookup (the str's hash is computed once anyway) costs a tenth of
    checking 74-78 digits one by one."""
    return text.isascii() and text.isdigit()


def _token(value: object) -> str:
    if type(value) is str and len(value) <= _TOKEN_MAX_CHARS and _is_token_text(value):
        return value
    raise _FallbackError


def _number(value: object) -> float:
    kind = type(value)
    if kind is str:
        try:
            number = float(value)  # type: ignore[arg-type]
        except ValueError:
            raise _FallbackError from None
    elif kind is float:
        number = value  # type: ignore[assignment]
    else:
        raise _FallbackError
    if not math.isfinite(number):
        raise _FallbackError
    return number


def _probability(value: object) -> float:
    number = _number(value)
    if not 0.0 <= number <= 1.0:
        raise _FallbackError
    return number


def _size(value: object) -> float:
    number = _number(value)
    if number < 0.0:
        raise _FallbackError
    return number


@functools.lru_cache(maxsize=_MIDPOINT_CACHE_SIZE, typed=True)
def _midpoint(bid: object, ask: object) -> float:
    """The stored price of a (best_bid, best_ask) pair of raw values, by the adapters'
    own rule (exact decimal midpoint); cached: prices sit on a tick grid, so pairs repeat."""
    if type(bid) not in (str, float) or type(ask) not in (str, float):
        raise _FallbackError
    try:
        price = best_midpoint({"best_bid": bid, "best_ask": ask}, "ws_price_change")
    except PayloadError:
        raise _FallbackError from None
    if not (math.isfinite(price) and 0.0 <= price <= 1.0):
        raise _FallbackError  # the model would refuse it: convert words the reason
    return price


def price_change_parts(event: PriceChange, out: Columns) -> None:
    ts = _unix_micros(event.timestamp)
    last: dict[str, PriceEntry] = {e.asset_id: e for e in event.price_changes}  # last wins
    for token in last:
        if len(token) > _TOKEN_MAX_CHARS or not _is_token_text(token):
            raise _FallbackError
    prices = [_midpoint(e.best_bid, e.best_ask) for e in last.values()]
    out.price_ts.extend([ts] * len(prices))
    out.price_token.extend(last)
    out.price_value.extend(prices)


_PRICE: Final = attrgetter("price")
_SIZE: Final = attrgetter("size")


def _book(event: OrderBook, out: Columns) -> None:
    """Append a book as it came (its levels range checked by the decode: ``Level``);
    spread and midpoint NaN, derived for the whole batch from the best levels."""
    ts = _unix_micros(event.timestamp)
    token = _token(event.asset_id)
    bids, asks = event.bids, event.asks
    out.book_ts.append(ts)
    out.book_token.append(token)
    out.book_bid_counts.append(len(bids))
    out.book_bid_prices.extend(map(_PRICE, bids))
    out.book_bid_sizes.extend(map(_SIZE, bids))
    out.book_ask_counts.append(len(asks))
    out.book_ask_prices.extend(map(_PRICE, asks))
    out.book_ask_sizes.extend(map(_SIZE, asks))
    out.book_spread.append(math.nan)
    out.book_midpoint.append(math.nan)


def _last_trade_price(event: LastTradePrice, out: Columns) -> None:
    ts = _unix_micros(event.timestamp)
    token = _token(event.asset_id)
    raw_price, raw_size = event.price, event.size
    price, size = _probability(raw_price), _size(raw_size)
    side = event.side.upper()
    if side != "BUY" and side != "SELL":
        raise _FallbackError
    tx_hash = event.transaction_hash
    if tx_hash is None:
        tx_hash = event.transactionHash
    trade_id = derive_fill_id(
        transaction_hash=tx_hash or None,
        token_id=token,
        side=side,
        price=raw_price,
        size=raw_size,
        ts=UNIX_EPOCH + timedelta(microseconds=ts),
    )
    out.price_ts.append(ts)
    out.price_token.append(token)
    out.price_value.append(price)
    out.trade_ts.append(ts)
    out.trade_token.append(token)
    out.trade_side.append(side)
    out.trade_price.append(price)
    out.trade_size.append(size)
    out.trade_id.append(trade_id)


def _append(event: HotEvent, out: Columns) -> bool:
    """Append a hot event's records to ``out``; False (nothing appended) when it is unusual."""
    mark = (len(out.price_ts), len(out.book_ts), len(out.trade_ts))
    try:
        if type(event) is PriceChange:
            price_change_parts(event, out)
        elif type(event) is OrderBook:
            _book(event, out)
        else:
            _last_trade_price(event, out)  # type: ignore[arg-type]
    except _FallbackError:
        _truncate(out, mark)
        return False
    return True


def convert_into(payload: object, out: Columns) -> None:
    """Convert one parsed payload, appending its records and rejects to ``out``.

    Same results as ``pmstore.polymarket.convert`` (see the module
    docstring); never raises for bad input. A hot payload costs a typed
    conversion (``hot_events.from_payload``) and a few list operations per
    record; anything else costs what ``convert`` costs.
    """
    if type(payload) is dict and payload.get("event_type") in HOT_KINDS:
        event = from_payload(payload)
        if event is not None and _append(event, out):
            return
        out.general_path += 1
    out.add_converted(convert(payload))


def append_hot_line(line: bytes, out: Columns) -> bool:
    """Append the records of a hot event's JSON text by the fast path alone: True when it
    did, False (nothing appended) when ``line`` is not a hot event or has something
    unusual in it (``convert_line`` it then, which words the reason). Never raises."""
    event = decode_line(line)
    return event is not None and _append(event, out)


def convert_line(line: bytes, out: Columns) -> None:
    """Convert one JSON text (a JSON-lines line), appending its records and rejects to ``out``.

    The same results as ``convert_into(orjson.loads(line), out)``; a hot
    event is decoded straight into typed structs (``hot_events.decode_line``:
    no dict, no level text in Python), anything else is parsed by orjson.
    Raises ``orjson.JSONDecodeError`` (a ValueError) when ``line`` is not JSON.
    """
    event = decode_line(line)
    if event is not None and _append(event, out):
        return
    payload = orjson.loads(line)
    if event is not None or (type(payload) is dict and payload.get("event_type") in HOT_KINDS):
        out.general_path += 1
    out.add_converted(convert(payload))


def _truncate(out: Columns, mark: tuple[int, int, int]) -> None:
    """Drop what a fast path appended before it fell back."""
    prices, books, trades = mark
    for name in _FIELDS["price_snapshots"]:
        del getattr(out, name)[prices:]
    for name in _FIELDS["orderbook_snapshots"]:
        del getattr(out, name)[books:]
    for name in _FIELDS["trades"]:
        del getattr(out, name)[trades:]
