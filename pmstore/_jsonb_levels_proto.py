"""PROTOTYPE (issue 23, phase 1): order-book sides as binary-COPY ``jsonb`` values.

Not wired into the Writer: the coordinator folds it into the write path
(``copy_encoding``/``copy_engines``, moving to ``pmstore/_write/``) in phase 2.
``benchmarks/proto_jsonb_levels.py`` measures it and patches it in for that.

The stored shape (migration 0014): a side is a JSON array of levels,
best-first, each ``[price, size]`` a pair of JSON numbers; ``[]`` when empty.

Wire format: in a binary COPY a ``jsonb`` field is a version byte (1) and
the JSON text, UTF-8 (PostgreSQL 15 ``jsonb_recv``). The server parses that
text as for a text COPY: a JSON number becomes a ``numeric`` holding exactly
the digits sent. So what the client sends decides exactness:

- **from float64 levels** (a built batch, the ingest fast path's flat
  levels): each number is written as its shortest round-trip decimal, the
  text ``repr`` gives. A decimal source string with at most 15 significant
  digits parses to a double whose shortest decimal is that string (minus
  trailing zeros), so ``"0.001"`` is stored as 0.001, not as
  0.001000000000000000020816681711721685... One orjson call writes a whole
  chunk's levels (``OPT_SERIALIZE_NUMPY``: ryu, the same digits as
  ``repr``); each row's text is a slice of it (``sides_from_floats``).
- **from Polymarket's decimal strings** (``{"price": "0.48", "size":
  "1234.5"}``): the strings are passed through unchanged, so every digit is
  kept (even beyond a double's 17), trailing zeros too. A column of sides is
  serialized once by orjson; numpy finds the value strings in those bytes,
  checks them as JSON numbers (``decimal_levels``: non-negative
  ``int[.digits]``, no sign, exponent or leading zero; anything else
  returns None and the caller parses per row and reports) and parses them
  to float64 (the same doubles ``float`` gives) for pmstore's rules (price
  in [0, 1], best-first order, spread and midpoint from the best levels,
  the digest). The batch keeps the bytes, not the strings; the encoder
  lays each chunk's text out from them with numpy (``sides_from_text``):
  no Python object per level at all.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from pmstore.batches import OrderbookBatch
from pmstore.batches.levels import (
    BookLevels,
    FlatLevels,
    best_first_order,
    best_prices,
    top_of_book,
)
from pmstore.copy_engines import Blob

__all__ = [
    "JSONB_VERSION",
    "MAX_DECIMAL_WIDTH",
    "ORJSON_BLOCK",
    "DecimalLevels",
    "DecimalTexts",
    "decimal_levels",
    "orderbook_batch_from_strings",
    "sides_field",
    "sides_from_floats",
    "sides_from_text",
]

JSONB_VERSION: Final = b"\x01"
"""The first byte of a binary ``jsonb`` value: the format version, 1."""
MAX_DECIMAL_WIDTH: Final = 40
"""The longest level string taken in bulk (the values are parsed column by column, one pass
per character of the longest; longer ones: the per-row path)."""

ORJSON_BLOCK: Final = 8_192
"""Levels per orjson call (~1 ms): orjson holds the GIL for a whole call."""
_OPEN: Final = ord("[")
_CLOSE: Final = ord("]")
_COMMA: Final = ord(",")
_ZERO: Final = ord("0")
_NINE: Final = ord("9")
_DOT: Final = ord(".")

Rows = slice | NDArray[np.intp]


# -- from float64 levels ------------------------------------------------------------------------


def sides_from_floats(flat: FlatLevels, rows: Rows, *, block: int = ORJSON_BLOCK) -> Blob:
    """jsonb values ``\\x01[[p,s],[p,s],...]`` of the sides of ``rows`` from float64 levels.

    orjson writes every level of the chunk as ``[[p,s],[p,s],...]`` (shortest
    round-trip decimals; ``block`` levels a call, as orjson holds the GIL
    while it runs); each row's levels are consecutive there,
    commas included, so its value is ``\\x01[`` + that slice + ``]``, located
    from the brackets' positions. No Python object per level. Finite values
    only (validated batches have no others: orjson writes NaN as null).
    """
    taken = flat.take(rows)
    pairs = np.column_stack((taken.prices, taken.sizes))
    # orjson holds the GIL: in blocks, so that a sending thread waits at most one block.
    blocks = [
        orjson.dumps(pairs[k : k + block], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        for k in range(0, len(pairs), block)
    ]
    text = b"[" + b",".join(blocks) + b"]"
    counts = taken.counts
    n = len(counts)
    starts = np.zeros(n, dtype=np.int64)
    bodies = np.zeros(n, dtype=np.int64)
    filled = counts > 0
    if filled.any():
        buf = np.frombuffer(text, dtype=np.uint8)
        opens = np.flatnonzero(buf == _OPEN)[1:]  # each level's "[" (not the outer one)
        closes = np.flatnonzero(buf == _CLOSE)[:-1]  # each level's "]"
        first = (np.cumsum(counts) - counts)[filled]
        starts[filled] = opens[first]
        bodies[filled] = closes[first + counts[filled] - 1] + 1 - opens[first]
    return Blob(text, bodies + len(JSONB_VERSION) + 2, starts, JSONB_VERSION + b"[", b"]")


# -- from decimal strings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecimalTexts:
    """A column of decimal strings as one byte buffer holding them and, per level in the
    levels' (best-first) order, where its text starts there and its length."""

    buffer: NDArray[np.uint8]
    """Bytes holding the texts (the column serialized by orjson)."""
    starts: NDArray[np.int64]
    lengths: NDArray[np.int64]

    def take(self, index: NDArray[np.intp]) -> DecimalTexts:
        """The texts of levels ``index`` (the buffer is shared)."""
        return DecimalTexts(self.buffer, self.starts[index], self.lengths[index])

    def padded(self) -> NDArray[np.uint8]:
        """The texts as a (levels x longest) byte matrix, NUL-padded."""
        width = int(self.lengths.max()) if len(self.lengths) else 0
        columns = np.arange(width)
        index = self.starts[:, None] + np.minimum(columns, self.lengths[:, None] - 1)
        matrix = self.buffer[index]
        matrix[columns >= self.lengths[:, None]] = 0
        return matrix


@dataclass(frozen=True, slots=True)
class DecimalLevels(FlatLevels):
    """Flat levels that also carry each level's decimal texts as received."""

    price_text: DecimalTexts
    size_text: DecimalTexts

    def take(self, rows: slice | NDArray[np.intp] | NDArray[np.bool_]) -> DecimalLevels:
        """The levels of ``rows``, texts included."""
        index = self.level_index(rows)
        return DecimalLevels(
            self.counts[rows],
            self.prices[index],
            self.sizes[index],
            self.price_text.take(index),
            self.size_text.take(index),
        )


_POW10: Final = 10.0 ** np.arange(23)
_EXACT: Final = 1 << 53
_QUOTE: Final = ord('"')
_LEVEL_QUOTES: Final = 8
"""``{"price":"0.48","size":"1234.5"}`` holds 8 quotes; the two values are strings 1 and 3."""


_PRICE_KEY: Final = np.frombuffer(b'{"price":"', dtype=np.uint8)
_SIZE_KEY: Final = np.frombuffer(b'","size":"', dtype=np.uint8)
_LEVEL_END: Final = np.frombuffer(b'"}', dtype=np.uint8)


def _structure_ok(u: NDArray[np.uint8], q: NDArray[np.int64], sides: int) -> bool:
    """Whether ``u`` (orjson's compact JSON of ``sides`` lists) holds only levels
    ``{"price":"...","size":"..."}``, each framed by its row of 8 quotes in ``q``.

    The fixed parts around the quotes are compared through a sliding-window
    view (no index per byte); as ``q`` holds every quote in order, they pin
    all 8. One ``[`` per side (and the outer list) and one ``{`` per level
    leave no room for other nesting."""
    windows = np.lib.stride_tricks.sliding_window_view(u, len(_PRICE_KEY))
    ends = np.lib.stride_tricks.sliding_window_view(u, len(_LEVEL_END))
    return bool(
        np.count_nonzero(u == _OPEN) == sides + 1
        and np.count_nonzero(u == ord("{")) == len(q)
        and (windows[q[:, 0] - 1] == _PRICE_KEY).all()
        and (windows[q[:, 3]] == _SIZE_KEY).all()
        and (ends[q[:, 7]] == _LEVEL_END).all()
    )


def _decimals(
    u: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.float64], DecimalTexts] | None:
    """The float64 value of each text ``u[starts:starts + lengths]``; None unless every one
    is a non-negative JSON number without exponent (``0``, ``12``, ``0.48``, ``1234.50``:
    digits and at most one dot, a digit on both sides of it, no sign, no leading zero).

    Checked and parsed column by column (one pass per character of the longest
    text): mantissa as an integer, then one division by a power of ten, which
    is the correctly rounded double when the mantissa is below 2**53 and there
    are at most 22 decimals (exactly what ``float(text)`` gives); longer texts
    go through ``float``.
    """
    n = len(starts)
    if n == 0:
        return np.zeros(0), DecimalTexts(u, starts, lengths)
    if lengths.min() == 0 or lengths.max() > MAX_DECIMAL_WIDTH:
        return None
    first, last = u[starts], u[starts + lengths - 1]
    ok = (first >= _ZERO) & (first <= _NINE) & (last >= _ZERO) & (last <= _NINE)
    ok &= (first != _ZERO) | (lengths == 1) | (u[starts + 1] == _DOT)
    mantissa = np.zeros(n, dtype=np.int64)
    decimals = np.zeros(n, dtype=np.int64)
    after_dot = np.zeros(n, dtype=bool)
    for c in range(int(lengths.max())):
        inside = lengths > c
        ch = u[starts + np.minimum(c, lengths - 1)]
        is_dot = inside & (ch == _DOT)
        is_digit = inside & (ch >= _ZERO) & (ch <= _NINE)
        ok &= ~inside | is_digit | (is_dot & ~after_dot)
        if c < 18:
            mantissa = np.where(is_digit, mantissa * 10 + (ch.astype(np.int64) - _ZERO), mantissa)
        decimals += is_digit & after_dot
        after_dot |= is_dot
    if not ok.all():
        return None
    values = mantissa.astype(np.float64) / _POW10[np.minimum(decimals, 22)]
    slow = np.flatnonzero((lengths > 18) | (mantissa > _EXACT) | (decimals > 22))
    for i in slow.tolist():
        values[i] = float(bytes(u[starts[i] : starts[i] + lengths[i]]))
    return values, DecimalTexts(u, starts, lengths)


def decimal_levels(sides: list[Any], descending: bool) -> DecimalLevels | None:
    """A column of sides of Polymarket's ``{"price": "0.48", "size": "1234.5"}`` levels in flat
    form, best-first, with their texts as received; None when anything is unusual (another
    level shape or key order, a non-string, a string that is not a plain decimal: then the
    caller parses row by row and names the problem).

    The column is serialized once by orjson (compact JSON, in C); numpy then
    finds each level's 8 quotes, checks that they frame exactly
    ``{"price":"...","size":"..."}``, and reads the values from those bytes,
    which the batch keeps (no ``str`` per level). Costs the orjson call, a
    few numpy passes over its output and one per character of the longest
    value, and the best-first reorder (``levels.best_first_order``).
    """
    if set(map(type, sides)) - {list}:
        return None
    counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
    try:
        data = orjson.dumps(sides)
    except TypeError:  # orjson.JSONEncodeError: something JSON cannot hold
        return None
    u = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(u == _QUOTE)
    n = int(counts.sum())
    if len(quotes) != _LEVEL_QUOTES * n:
        return None
    q = quotes.reshape(n, _LEVEL_QUOTES)
    if n and not _structure_ok(u, q, len(sides)):
        return None
    prices = _decimals(u, q[:, 2] + 1, q[:, 3] - q[:, 2] - 1)
    sizes = _decimals(u, q[:, 6] + 1, q[:, 7] - q[:, 6] - 1)
    if prices is None or sizes is None:
        return None
    flat = FlatLevels(counts, prices[0], sizes[0])
    price_text, size_text = prices[1], sizes[1]
    order = best_first_order(flat, descending)
    if order is not None:
        flat = FlatLevels(counts, flat.prices[order], flat.sizes[order])
        price_text, size_text = price_text.take(order), size_text.take(order)
    return DecimalLevels(counts, flat.prices, flat.sizes, price_text, size_text)


def orderbook_batch_from_strings(
    columns: dict[str, Any], *, threads: bool = False
) -> OrderbookBatch | None:
    """An OrderbookBatch of ``ts``/``token_id``/``bids``/``asks`` columns whose levels are
    Polymarket's decimal strings, carrying them as ``DecimalLevels`` (the encoder passes the
    texts through); spread and midpoint derived from the best levels. None when a side is
    unusual (then ``OrderbookBatch.from_columns`` parses and names the row).

    ``threads``: the bids in a second thread while this one does the asks
    (most of ``decimal_levels`` is numpy, which releases the GIL). Prototype
    of what ``OrderbookBatch._complete`` would do for string levels. Raises
    ``BatchValidationError`` like ``from_flat``.
    """
    bid_sides, ask_sides = list(columns["bids"]), list(columns["asks"])
    if threads:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(decimal_levels, bid_sides, True)
            asks = decimal_levels(ask_sides, descending=False)
            bids = pending.result()
    else:
        bids = decimal_levels(bid_sides, descending=True)
        asks = decimal_levels(ask_sides, descending=False)
    if bids is None or asks is None:
        return None
    n = len(bids.counts)
    spread, midpoint = top_of_book(
        np.full(n, np.nan), np.full(n, np.nan), best_prices(bids), best_prices(asks)
    )
    ts = np.asarray(columns["ts"], dtype="datetime64[us]")
    token_id = np.asarray(columns["token_id"], dtype=object)
    return OrderbookBatch.from_flat(ts, token_id, BookLevels(bids, asks), spread, midpoint)


def sides_from_text(levels: DecimalLevels, rows: Rows) -> Blob:
    """jsonb values ``\\x01[[p,s],...]`` of the sides of ``rows``, the decimal texts passed
    through.

    Each level is laid out as ``[price,size],`` in a byte matrix (the texts
    gathered from their buffers, NUL-padded to the longest), the padding
    dropped by one boolean compaction; the chunk's levels are then
    consecutive, each row's too, so a row's value is ``\\x01[`` + its
    levels' text without the last comma + ``]``. numpy only: no Python
    object per level.
    """
    taken = levels.take(rows)
    price, size = taken.price_text.padded(), taken.size_text.padded()
    n, wp, ws = len(price), price.shape[1], size.shape[1]
    record = np.empty((n, wp + ws + 4), dtype=np.uint8)
    record[:, 0] = _OPEN
    record[:, 1 : 1 + wp] = price
    record[:, 1 + wp] = _COMMA
    record[:, 2 + wp : 2 + wp + ws] = size
    record[:, 2 + wp + ws] = _CLOSE
    record[:, 3 + wp + ws] = _COMMA
    text = record[record != 0]  # row-major: level after level, padding dropped
    level_bytes = taken.price_text.lengths + taken.size_text.lengths + 4
    ends = np.cumsum(level_bytes)
    counts = taken.counts
    row_ends = np.cumsum(counts)
    starts = np.zeros(len(counts), dtype=np.int64)
    bodies = np.zeros(len(counts), dtype=np.int64)
    filled = counts > 0
    first = (row_ends - counts)[filled]
    last = row_ends[filled] - 1
    starts[filled] = ends[first] - level_bytes[first]
    bodies[filled] = ends[last] - 1 - starts[filled]  # the last level's comma left out
    return Blob(text, bodies + len(JSONB_VERSION) + 2, starts, JSONB_VERSION + b"[", b"]")


def sides_field(flat: FlatLevels, rows: Rows) -> Blob:
    """The jsonb field of a levels column: texts passed through when the levels carry them,
    else the floats' shortest decimals."""
    if isinstance(flat, DecimalLevels):
        return sides_from_text(flat, rows)
    return sides_from_floats(flat, rows)
