"""Order-book levels given as decimal strings: their float64 values and their texts, kept.

Polymarket sends a level as ``{"price": "0.48", "size": "1234.5"}``. The
``orderbook_snapshots`` sides are JSONB (migration 0014), where a JSON number
is a ``numeric`` holding exactly the digits sent, so a batch built from such
strings keeps each level's text beside its float64 value (``DecimalLevels``),
and the Writer sends the texts unchanged (``pmstore._write.jsonb_levels``): every
digit is stored, trailing zeros too, even beyond a double's 17. The floats
serve pmstore's rules (price in [0, 1], best-first order, spread and
midpoint from the best levels).

Which text a value gets (one rule per value, whatever path parsed it):

- a string that is a plain JSON decimal (``0``, ``12``, ``0.48``,
  ``1234.50``: digits with at most one dot, a digit on both sides of it, no
  sign, exponent, space or leading zero) is its own text;
- any other value (a number, or a numeric string such as ``"1e-5"`` or
  ``".5"``) gets the shortest decimal that reads back as its double, as the
  Writer writes float levels (``float_levels_text``, ``float_texts``).

A column gets texts when any of its values is a string; a column of numbers
stays plain ``FlatLevels`` (the Writer writes their shortest decimals).

The common shapes of a whole column (every level ``{"price": str, "size":
str}`` in that key order, or every level a pair of strings) are done in bulk
(``decimal_levels``): the column is serialized by orjson (in C, a block of
sides a call), numpy finds every value's text in those bytes, checks it and
parses it, and the batch keeps the bytes: no Python object per level. Other
columns are parsed side by side (``decimal_sides``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Final

import numpy as np
import orjson
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from pmstore.batches._convert import level_pairs, number
from pmstore.batches._levels import FlatLevels, best_first_order

__all__ = [
    "LEVELS_PER_DUMP",
    "MAX_BULK_WIDTH",
    "DecimalLevels",
    "DecimalTexts",
    "concat_levels",
    "decimal_levels",
    "decimal_sides",
    "float_levels_text",
    "float_texts",
    "is_plain_decimal",
]

MAX_BULK_WIDTH: Final = 40
"""The longest value text taken in bulk (longer ones: parsed side by side, kept as well)."""
SIDES_PER_DUMP: Final = 2_048
"""Sides serialized per orjson call (~2-3 ms: orjson holds the GIL for a whole call)."""
LEVELS_PER_DUMP: Final = 8_192
"""Float levels serialized per orjson call by ``float_levels_text`` (~1 ms): orjson holds
the GIL for a whole call, so a sending thread waits at most about one call."""

_QUOTE: Final = ord('"')
_OPEN: Final = ord("[")
_CLOSE: Final = ord("]")
_COMMA: Final = ord(",")
_BRACE: Final = ord("{")
_ZERO: Final = ord("0")
_NINE: Final = ord("9")
_DOT: Final = ord(".")
_POW10: Final = 10.0 ** np.arange(23)
_EXACT: Final = 1 << 53
_PLAIN: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_PRICE_KEY: Final = np.frombuffer(b'{"price":"', dtype=np.uint8)
_SIZE_KEY: Final = np.frombuffer(b'","size":"', dtype=np.uint8)
_DICT_END: Final = np.frombuffer(b'"}', dtype=np.uint8)
_PAIR_MIDDLE: Final = np.frombuffer(b'","', dtype=np.uint8)
_PAIR_END: Final = np.frombuffer(b'"]', dtype=np.uint8)


def is_plain_decimal(text: str) -> bool:
    """Whether ``text`` is a plain non-negative JSON decimal (see the module notes)."""
    return text.isascii() and _PLAIN.fullmatch(text) is not None


# -- texts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecimalTexts:
    """A column of texts: one byte buffer holding them and, per level in the levels' order,
    where its text starts there and its length (a level's text never holds a NUL byte)."""

    buffer: NDArray[np.uint8]
    starts: NDArray[np.int64]
    lengths: NDArray[np.int64]

    def take(self, index: NDArray[np.intp] | slice) -> DecimalTexts:
        """The texts of levels ``index`` (the buffer is shared)."""
        return DecimalTexts(self.buffer, self.starts[index], self.lengths[index])

    @property
    def width(self) -> int:
        """The longest text's length (0 when there are none)."""
        return int(self.lengths.max()) if len(self.lengths) else 0

    def padded(self, width: int | None = None) -> NDArray[np.uint8]:
        """The texts as a (levels x ``width``) byte matrix, NUL-padded (``width``: at least
        the longest). One row gather through a sliding-window view of the buffer (no index
        per byte), then the bytes past each text cleared."""
        wide = self.width if width is None else width
        if wide == 0 or not len(self.starts):
            return np.zeros((len(self.starts), wide), dtype=np.uint8)
        buffer = self.buffer
        if int(self.starts.max()) + wide > len(buffer):  # room for the last window
            buffer = np.concatenate([buffer, np.zeros(wide, dtype=np.uint8)])
        matrix: NDArray[np.uint8] = sliding_window_view(buffer, wide)[self.starts]
        matrix[np.arange(wide) >= self.lengths[:, None]] = 0
        return matrix

    def joined(self) -> bytes:
        """Every text, concatenated in order."""
        matrix = self.padded()
        return matrix[np.arange(matrix.shape[1]) < self.lengths[:, None]].tobytes()

    def freeze(self) -> None:
        """Make the arrays read-only (a batch owns them)."""
        for array in (self.starts, self.lengths):
            array.flags.writeable = False

    @classmethod
    def from_bytes(cls, texts: Sequence[bytes]) -> DecimalTexts:
        """Texts given one by one, laid out in one buffer."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        buffer = np.frombuffer(b"".join(texts), dtype=np.uint8)
        return cls(buffer, np.cumsum(lengths) - lengths, lengths)

    @classmethod
    def concat(cls, parts: Sequence[DecimalTexts]) -> DecimalTexts:
        """The texts of ``parts`` one after another (their buffers joined)."""
        offsets = np.cumsum([0] + [len(p.buffer) for p in parts])[:-1]
        return cls(
            np.concatenate([p.buffer for p in parts]) if parts else np.zeros(0, dtype=np.uint8),
            np.concatenate([p.starts + o for p, o in zip(parts, offsets.tolist(), strict=True)])
            if parts
            else np.zeros(0, dtype=np.int64),
            np.concatenate([p.lengths for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        )


def float_levels_text(
    prices: NDArray[np.float64], sizes: NDArray[np.float64], *, block: int = LEVELS_PER_DUMP
) -> bytes:
    """The JSON text ``[p,s],[p,s],...`` of float64 levels, each value its shortest
    round-trip decimal as orjson writes it (``0.48``, ``1000.0``, ``1e-7``;
    ``OPT_SERIALIZE_NUMPY``, ``block`` levels a call). The one source of a float level's
    text: the Writer sends it (``_write.jsonb_levels.sides_from_floats``) and
    ``float_texts`` cuts it into values. Finite values only."""
    pairs = np.empty((len(prices), 2))
    pairs[:, 0], pairs[:, 1] = prices, sizes
    dumps = [
        orjson.dumps(pairs[k : k + block], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        for k in range(0, len(pairs), block)
    ]
    return b",".join(dumps)


def float_texts(flat: FlatLevels) -> tuple[DecimalTexts, DecimalTexts]:
    """Each level's price and size text as the Writer sends float levels: cut out of
    ``float_levels_text`` (between each level's ``[``, its inner comma and its ``]``)."""
    u = np.frombuffer(float_levels_text(flat.prices, flat.sizes), dtype=np.uint8)
    opens = np.flatnonzero(u == _OPEN)
    middles = np.flatnonzero(u == _COMMA)[::2]  # a level's own comma, then the one after it
    closes = np.flatnonzero(u == _CLOSE)
    return (
        DecimalTexts(u, opens + 1, middles - opens - 1),
        DecimalTexts(u, middles + 1, closes - middles - 1),
    )


# -- levels with texts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecimalLevels(FlatLevels):
    """Flat levels that also carry each level's price and size text (see the module notes)."""

    price_text: DecimalTexts
    size_text: DecimalTexts

    def take(self, rows: slice | NDArray[np.intp] | NDArray[np.bool_]) -> DecimalLevels:
        """The levels of ``rows`` (a slice, row indices or a mask), texts included."""
        if isinstance(rows, slice) and rows.step in (None, 1):
            counts = self.counts[rows]
            first = int(self.starts[rows][0]) if len(counts) else 0
            index: slice | NDArray[np.intp] = slice(first, first + int(counts.sum()))
            counts = counts.copy()
        else:
            index = self.level_index(rows)
            counts = self.counts[rows]
        return DecimalLevels(
            counts,
            self.prices[index].copy(),
            self.sizes[index].copy(),
            self.price_text.take(index),
            self.size_text.take(index),
        )

    def reordered(self, order: NDArray[np.intp]) -> DecimalLevels:
        """The same rows with each row's levels in ``order`` (a permutation within rows)."""
        return DecimalLevels(
            self.counts,
            self.prices[order],
            self.sizes[order],
            self.price_text.take(order),
            self.size_text.take(order),
        )

    def freeze(self) -> None:
        """Make the arrays read-only (a batch owns them)."""
        FlatLevels.freeze(self)
        self.price_text.freeze()
        self.size_text.freeze()


def with_texts(flat: FlatLevels) -> DecimalLevels:
    """``flat`` with texts: its own when it has them, else the floats' (``float_texts``)."""
    if isinstance(flat, DecimalLevels):
        return flat
    return DecimalLevels(flat.counts, flat.prices, flat.sizes, *float_texts(flat))


def concat_levels(parts: Sequence[FlatLevels]) -> FlatLevels:
    """The rows of ``parts`` one after another; with texts when any part has them (the
    others then get their floats' texts, as a whole column parsed at once would)."""
    counts = np.concatenate([p.counts for p in parts]) if parts else np.zeros(0, np.int64)
    prices = np.concatenate([p.prices for p in parts]) if parts else np.zeros(0)
    sizes = np.concatenate([p.sizes for p in parts]) if parts else np.zeros(0)
    if not any(isinstance(p, DecimalLevels) for p in parts):
        return FlatLevels(counts, prices, sizes)
    texts = [with_texts(p) for p in parts]
    return DecimalLevels(
        counts,
        prices,
        sizes,
        DecimalTexts.concat([t.price_text for t in texts]),
        DecimalTexts.concat([t.size_text for t in texts]),
    )


# -- the bulk path: a whole column of string levels --------------------------------------------


def _dumped(sides: list[Any]) -> bytes | None:
    """``orjson.dumps(sides)``, a block of sides a call (the GIL is handed over between
    calls); None when something in them is not JSON."""
    try:
        if len(sides) <= SIDES_PER_DUMP:
            return orjson.dumps(sides)
        blocks = [
            orjson.dumps(sides[k : k + SIDES_PER_DUMP])[1:-1]
            for k in range(0, len(sides), SIDES_PER_DUMP)
        ]
    except TypeError:  # orjson.JSONEncodeError: a value JSON cannot hold
        return None
    return b"[" + b",".join(block for block in blocks if block) + b"]"


def _windows_match(u: NDArray[np.uint8], at: NDArray[np.int64], pattern: NDArray[np.uint8]) -> bool:
    """Whether ``pattern`` is in ``u`` at every position ``at``."""
    if not len(at):
        return True
    if int(at.min()) < 0 or int(at.max()) + len(pattern) > len(u):
        return False
    return bool((sliding_window_view(u, len(pattern))[at] == pattern).all())


def _structure(u: NDArray[np.uint8], sides: int, n: int) -> NDArray[np.int64] | None:
    """Where each level's price and size texts are in ``u`` (orjson's compact JSON of
    ``sides`` lists holding ``n`` levels in all): a (levels x 4) array of price start,
    price end, size start, size end; None unless every level is
    ``{"price":"...","size":"..."}`` or every level is ``["...","..."]``.

    The quotes are found once; the fixed parts around them are compared through
    sliding-window views (no index per byte). As the quotes are all accounted for
    and pinned, one ``[`` per side (and the outer list) plus one ``{`` or ``[``
    per level leave no room for anything else.
    """
    quotes = np.flatnonzero(u == _QUOTE)
    opens = int(np.count_nonzero(u == _OPEN))
    braces = int(np.count_nonzero(u == _BRACE))
    if n == 0:
        return np.zeros((0, 4), dtype=np.int64) if len(quotes) == 0 else None
    if len(quotes) == 8 * n and braces == n and opens == sides + 1:
        q = quotes.reshape(n, 8)
        if (
            _windows_match(u, q[:, 0] - 1, _PRICE_KEY)
            and _windows_match(u, q[:, 3], _SIZE_KEY)
            and _windows_match(u, q[:, 7], _DICT_END)
        ):
            return np.column_stack((q[:, 2] + 1, q[:, 3], q[:, 6] + 1, q[:, 7]))
        return None
    if len(quotes) == 4 * n and braces == 0 and opens == sides + 1 + n:
        q = quotes.reshape(n, 4)
        if (
            bool((u[q[:, 0] - 1] == _OPEN).all())
            and _windows_match(u, q[:, 1], _PAIR_MIDDLE)
            and _windows_match(u, q[:, 3], _PAIR_END)
        ):
            return np.column_stack((q[:, 0] + 1, q[:, 1], q[:, 2] + 1, q[:, 3]))
    return None


def _parsed(
    u: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.float64], DecimalTexts] | None:
    """The float64 value of each text ``u[start:end]`` and the texts; None unless every one
    is a plain decimal (``is_plain_decimal``) of at most ``MAX_BULK_WIDTH`` characters.

    Checked and parsed column by column of a NUL-padded matrix (one pass per
    character of the longest text): the digits as an integer, then one division by
    a power of ten, which is the correctly rounded double (what ``float(text)``
    gives) when the integer is below 2**53 and there are at most 22 decimals;
    other texts go through ``float``.
    """
    lengths = ends - starts
    texts = DecimalTexts(u, starts, lengths)
    n = len(starts)
    if n == 0:
        return np.zeros(0), texts
    width = texts.width
    if int(lengths.min()) == 0 or width > MAX_BULK_WIDTH:
        return None
    matrix = texts.padded(width)
    first, last = matrix[:, 0], u[ends - 1]
    ok = (first >= _ZERO) & (first <= _NINE) & (last >= _ZERO) & (last <= _NINE)
    if width > 1:
        ok &= (first != _ZERO) | (lengths == 1) | (matrix[:, 1] == _DOT)
    mantissa = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)  # digits so far
    decimals = np.zeros(n, dtype=np.int64)
    after_dot = np.zeros(n, dtype=bool)
    for c in range(width):
        ch = matrix[:, c]
        is_digit = (ch >= _ZERO) & (ch <= _NINE)
        is_dot = ch == _DOT
        ok &= is_digit | (is_dot & ~after_dot) | (ch == 0)
        take = is_digit & (digits < 18)  # int64 holds 18 digits; longer ones: float()
        mantissa = np.where(take, mantissa * 10 + (ch.astype(np.int64) - _ZERO), mantissa)
        digits += is_digit
        decimals += is_digit & after_dot
        after_dot |= is_dot
    if not ok.all():
        return None
    values = mantissa.astype(np.float64) / _POW10[np.minimum(decimals, 22)]
    slow = np.flatnonzero((digits > 18) | (mantissa > _EXACT) | (decimals > 22))
    for i in slow.tolist():
        values[i] = float(u[starts[i] : ends[i]].tobytes())
    return values, texts


def decimal_levels(sides: list[Any], descending: bool) -> DecimalLevels | None:
    """A column of sides of string levels (``{"price": "0.48", "size": "1234.5"}`` dicts in
    that key order, or ``("0.48", "1234.5")`` pairs) in flat form, best-first, with their
    texts; None when anything is unusual (another shape, a value that is not a plain
    decimal string: then the caller parses side by side and names any problem).

    Costs orjson's serialization of the column, a few numpy passes over its bytes,
    one per character of the longest value, and the best-first reorder
    (``best_first_order``); no Python object per level.
    """
    if set(map(type, sides)) - {list} or not _first_price_is_text(sides):
        return None
    counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
    data = _dumped(sides)
    if data is None:
        return None
    u = np.frombuffer(data, dtype=np.uint8)
    found = _structure(u, len(sides), int(counts.sum()))
    if found is None:
        return None
    prices = _parsed(u, found[:, 0], found[:, 1])
    sizes = _parsed(u, found[:, 2], found[:, 3]) if prices is not None else None
    if prices is None or sizes is None:
        return None
    levels = DecimalLevels(counts, prices[0], sizes[0], prices[1], sizes[1])
    order = best_first_order(levels, descending)
    return levels if order is None else levels.reordered(order)


def _first_price_is_text(sides: list[list[Any]]) -> bool:
    """Whether the column's first level has a string price (or it has no level): a column
    of numbers is known at once, without serializing it."""
    first = next((side[0] for side in sides if side), None)
    if first is None:
        return True
    try:
        price = first["price"] if isinstance(first, dict) else first[0]
    except (KeyError, IndexError, TypeError):
        return True  # unusual: the full check names it
    return isinstance(price, str)


# -- side by side: any other shape -------------------------------------------------------------


def _value(value: object) -> tuple[float, bytes] | None:
    """A level value's float and text (see the module notes); None if it is not a number."""
    parsed = number(value)
    if parsed is None:
        return None
    if type(value) is str and is_plain_decimal(value):
        return parsed, value.encode("ascii")
    if not np.isfinite(parsed):
        return parsed, b"null"  # never written: a batch with it fails validation
    return parsed, orjson.dumps(parsed)


Parsed = tuple[float, float, bytes, bytes]
"""A level's price, size, price text and size text."""


def _decimal_side(levels: object, descending: bool) -> list[Parsed] | str:
    """A side's levels as (price, size, price text, size text), sorted best-first, or the
    reason it is malformed (``parse_levels``' wording)."""
    pairs = level_pairs(levels, _value)
    if isinstance(pairs, str):
        return pairs
    parsed = [(price[0], size[0], price[1], size[1]) for price, size in pairs]
    parsed.sort(key=itemgetter(0), reverse=descending)
    return parsed


def decimal_sides(sides: list[Any], descending: bool) -> DecimalLevels | list[int] | None:
    """A column of sides in any accepted shape, side by side, with texts (see the module
    notes); the rows that are malformed when some are (the caller reports them), None when
    no value is a string (then the column needs no texts). Costs a Python loop per level."""
    if not any(type(v) is str for v in _values(sides)):
        return None
    rows: list[list[Parsed]] = []
    bad: list[int] = []
    for i, levels in enumerate(sides):
        side = _decimal_side(levels, descending)
        if isinstance(side, str):
            bad.append(i)
        else:
            rows.append(side)
    if bad:
        return bad
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = list(chain.from_iterable(rows))
    return DecimalLevels(
        counts,
        np.fromiter(map(itemgetter(0), flat), dtype=np.float64, count=len(flat)),
        np.fromiter(map(itemgetter(1), flat), dtype=np.float64, count=len(flat)),
        DecimalTexts.from_bytes(list(map(itemgetter(2), flat))),
        DecimalTexts.from_bytes(list(map(itemgetter(3), flat))),
    )


def _values(sides: list[Any]) -> list[Any]:
    """Every value of every level of ``sides`` (dict levels: their price and size), as far
    as they are levels at all."""
    out: list[Any] = []
    for levels in sides:
        if not isinstance(levels, list | tuple):
            continue
        for level in levels:
            if isinstance(level, dict):
                out.extend((level.get("price"), level.get("size")))
            elif isinstance(level, list | tuple):
                out.extend(level)
    return out
