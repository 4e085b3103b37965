"""Order-book levels in bulk: a whole column of book sides parsed, sorted and checked at once.

The per-row forms (``_convert.parse_levels``, ``_checks.level_problem``) name
what is wrong with one side; these do the common cases for every side of a
column in a few C-level passes (``map``, ``chain``, numpy), and return None
whenever something is unusual, so the caller falls back to the per-row forms.
Accepted level shapes: ``{"price": ..., "size": ...}`` dicts and ``(price,
size)`` pairs of numbers (what bulk parsing gains: benchmarks/README.md,
"Levels in bulk"). Levels given as strings (Polymarket's ``{"price": "0.48",
"size": "1234.5"}``) keep their texts: ``_decimal_levels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pmstore.batches._spec import Level

__all__ = [
    "BookLevels",
    "FlatLevels",
    "best_first",
    "best_first_order",
    "best_prices",
    "check_flat",
    "check_sides",
    "flat_levels",
    "flat_sides",
    "side_lists",
    "top_of_book",
]

_PRICE_SIZE = itemgetter("price", "size")
_NUMBER_TYPES = frozenset({float, int})


@dataclass(frozen=True, slots=True)
class FlatLevels:
    """Every level of a column of sides: per row a count, then all prices and sizes in order."""

    counts: NDArray[np.int64]
    prices: NDArray[np.float64]
    sizes: NDArray[np.float64]

    @property
    def starts(self) -> NDArray[np.int64]:
        """Where each row's levels start in ``prices``/``sizes``."""
        return np.cumsum(self.counts) - self.counts

    def rows(self) -> NDArray[np.int64]:
        """The row of each level."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    def level_index(self, rows: slice | NDArray[np.intp] | NDArray[np.bool_]) -> NDArray[np.intp]:
        """The indices into ``prices``/``sizes`` of the levels of ``rows``, row after row.

        Costs a cumulative sum over the rows and a repeat over their levels."""
        starts = self.starts[rows]
        counts = self.counts[rows]
        taken = np.cumsum(counts) - counts
        index: NDArray[np.intp] = np.repeat(starts - taken, counts) + np.arange(int(counts.sum()))
        return index

    def take(self, rows: slice | NDArray[np.intp] | NDArray[np.bool_]) -> FlatLevels:
        """The levels of ``rows`` (a slice, row indices or a mask), in that row order."""
        if isinstance(rows, slice) and rows.step in (None, 1):
            counts = self.counts[rows]
            first = int(self.starts[rows][0]) if len(counts) else 0
            span = slice(first, first + int(counts.sum()))
            return FlatLevels(counts.copy(), self.prices[span].copy(), self.sizes[span].copy())
        index = self.level_index(rows)
        return FlatLevels(self.counts[rows], self.prices[index], self.sizes[index])

    def reordered(self, order: NDArray[np.intp]) -> FlatLevels:
        """The same rows with each row's levels in ``order`` (a permutation within rows)."""
        return FlatLevels(self.counts, self.prices[order], self.sizes[order])

    def freeze(self) -> None:
        """Make the arrays read-only (a batch owns them)."""
        for array in (self.counts, self.prices, self.sizes):
            array.flags.writeable = False


@dataclass(frozen=True, slots=True)
class BookLevels:
    """Both sides of a column of books in flat form (best-first), as an ``OrderbookBatch``
    carries them next to its ``bids``/``asks`` objects: the checks, the digest, the size
    estimate and the COPY arrays then work on these arrays, never on per-level tuples."""

    bids: FlatLevels
    asks: FlatLevels

    def side(self, name: str) -> FlatLevels:
        """The levels of column ``name`` ("bids" or "asks")."""
        return self.bids if name == "bids" else self.asks

    def take(self, rows: slice | NDArray[np.intp] | NDArray[np.bool_]) -> BookLevels:
        """The levels of ``rows`` of both sides."""
        return BookLevels(self.bids.take(rows), self.asks.take(rows))


def side_lists(flat: FlatLevels) -> list[list[Level]]:
    """Every row's levels as a list of ``(float, float)`` tuples (a batch's object form).

    Costs one tuple per level, made by C-level ``zip`` and list slices."""
    pairs = list(zip(flat.prices.tolist(), flat.sizes.tolist(), strict=True))
    ends = np.cumsum(flat.counts)
    return [pairs[a:b] for a, b in zip((ends - flat.counts).tolist(), ends.tolist(), strict=True)]


def best_first_order(flat: FlatLevels, descending: bool) -> NDArray[np.intp] | None:
    """The order that puts each row's levels best-first, row by row (None: all already are).

    The order ``sorted(levels, key=price, reverse=descending)`` gives, for finite
    prices: a row already best-first is kept, one strictly worst-first
    (Polymarket's order) is reversed, any other is sorted stably (lexsort);
    rows are judged one by one, so one odd row costs a sort of its own
    levels only. Costs a few whole-array passes over the levels.
    """
    prices, n = flat.prices, len(flat.prices)
    if n < 2:
        return None
    same_row = np.ones(n - 1, dtype=bool)
    same_row[(flat.starts[flat.counts > 0] - 1)[1:]] = False  # no step across rows
    step = np.diff(prices)
    if descending:
        step = -step
    wrong_way = same_row & (step < 0)
    if not wrong_way.any():
        return None
    level_rows = flat.rows()
    unsorted = np.zeros(len(flat.counts), dtype=bool)
    unsorted[level_rows[1:][wrong_way]] = True
    not_strict = np.zeros(len(flat.counts), dtype=bool)
    not_strict[level_rows[1:][same_row & (step >= 0)]] = True
    order = np.arange(n)
    reverse = (unsorted & ~not_strict)[level_rows]
    if reverse.any():
        first = np.repeat(flat.starts, flat.counts)
        last = first + np.repeat(flat.counts, flat.counts) - 1
        order[reverse] = (first + last - order)[reverse]
    resort = np.flatnonzero((unsorted & not_strict)[level_rows])
    if resort.size:
        key = -prices[resort] if descending else prices[resort]
        order[resort] = resort[np.lexsort((key, level_rows[resort]))]
    return order


def best_first(flat: FlatLevels, descending: bool) -> FlatLevels:
    """``flat`` with each row's levels best-first (itself when they all already are)."""
    order = best_first_order(flat, descending)
    return flat if order is None else flat.reordered(order)


def best_prices(flat: FlatLevels) -> NDArray[np.float64]:
    """Each row's first price (its best, once best-first); NaN for an empty side."""
    best = np.full(len(flat.counts), np.nan)
    filled = flat.counts > 0
    best[filled] = flat.prices[flat.starts[filled]]
    return best


def top_of_book(
    spread: NDArray[np.float64],
    midpoint: NDArray[np.float64],
    best_bid: NDArray[np.float64],
    best_ask: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Spread and midpoint, derived from the best prices on the rows where neither is
    given (both NaN), as ``OrderbookSnapshot`` derives them: ``ask - bid`` and
    ``(bid + ask) / 2``, NaN when a side is empty. Rows with either given are kept."""
    derive = np.isnan(spread) & np.isnan(midpoint)
    if not derive.any():
        return spread, midpoint
    return (
        np.where(derive, best_ask - best_bid, spread),
        np.where(derive, (best_bid + best_ask) / 2.0, midpoint),
    )


def flat_levels(sides: list[Any]) -> FlatLevels | None:
    """The levels of sides that are lists of ``(float, float)`` tuples (a built batch's form);
    None for any other shape. Costs four C-level passes over the levels."""
    if set(map(type, sides)) - {list}:
        return None
    counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
    levels = list(chain.from_iterable(sides))
    if set(map(type, levels)) - {tuple} or set(map(len, levels)) - {2}:
        return None
    numbers = list(chain.from_iterable(levels))
    if set(map(type, numbers)) - {float}:
        return None
    flat = np.fromiter(numbers, dtype=np.float64, count=len(numbers))
    return FlatLevels(counts, flat[0::2].copy(), flat[1::2].copy())


def _numbers(sides: list[Any]) -> FlatLevels | None:
    """Levels of numbers in any accepted shape (dicts or pairs) as float64; None if unusual
    (strings among them too: those keep their texts, ``_decimal_levels``)."""
    if set(map(type, sides)) - {list, tuple}:
        return None
    counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
    levels = list(chain.from_iterable(sides))
    shapes = set(map(type, levels))
    if shapes == {dict}:
        try:
            pairs: list[Any] = list(map(_PRICE_SIZE, levels))
        except KeyError:
            return None
    elif shapes <= {tuple, list} and not set(map(len, levels)) - {2}:
        pairs = levels
    elif not levels:
        pairs = []
    else:
        return None
    numbers = list(chain.from_iterable(pairs))
    if set(map(type, numbers)) - _NUMBER_TYPES:
        return None
    try:
        flat = np.fromiter(numbers, dtype=np.float64, count=len(numbers))
    except OverflowError:  # an int beyond a double
        return None
    return FlatLevels(counts, flat[0::2].copy(), flat[1::2].copy())


def flat_sides(sides: list[Any], descending: bool) -> tuple[FlatLevels, NDArray[np.float64]] | None:
    """Every side of levels of numbers in flat form, best-first, and each row's best price
    (NaN for an empty side); None when a side is unusual or holds strings (then
    ``_decimal_levels``, or parse row by row).

    Best-first is descending price for bids, ascending for asks; sides that
    are already in one direction (Polymarket sends worst-first) are kept or
    reversed without sorting, others are sorted stably, as ``sorted`` does.
    Costs a few C-level passes over the levels, no object per level.
    """
    flat = _numbers(sides)
    if flat is None:
        return None
    flat = best_first(flat, descending)
    return flat, best_prices(flat)


def check_sides(sides: list[Any], descending: bool) -> NDArray[np.bool_] | None:
    """The rows whose side breaks a rule (price outside [0, 1], size negative or not finite,
    not best-first); None unless every side is in a built batch's form (then check per row)."""
    flat = flat_levels(sides)
    if flat is None:
        return None
    return check_flat(flat, descending)


def check_flat(flat: FlatLevels, descending: bool) -> NDArray[np.bool_]:
    """The rows of ``flat`` whose side breaks a rule (as ``check_sides``); whole-array passes."""
    prices, sizes, n = flat.prices, flat.sizes, len(flat.prices)
    with np.errstate(invalid="ignore"):
        bad_level = ~((prices >= 0.0) & (prices <= 1.0) & (sizes >= 0.0) & np.isfinite(sizes))
        if n > 1:
            step = np.diff(prices)
            wrong_way = (step > 0) if descending else (step < 0)
            same_row = np.ones(n - 1, dtype=bool)
            same_row[(flat.starts[flat.counts > 0] - 1)[1:]] = False
            bad_level[1:] |= wrong_way & same_row
    bad = np.zeros(len(flat.counts), dtype=bool)
    bad[flat.rows()[bad_level]] = True
    return bad
