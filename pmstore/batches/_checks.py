"""The value rules of the batch columns as whole-column (vectorized) checks:
each gives the mask of the rows that break it and how to word each problem.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pmstore.batches._blocks import block_items, row_blocks
from pmstore.batches._convert import parse_levels, type_name
from pmstore.batches._levels import FlatLevels, check_flat, check_sides
from pmstore.batches._spec import ColumnSpec


@dataclass(frozen=True, slots=True)
class Check:
    """The rows of one column that break one rule, and how to word each problem."""

    column: str
    bad: NDArray[np.bool_]
    reason: Callable[[int], str]


def ts_checks(
    name: str, ts: NDArray[np.datetime64], naive: NDArray[np.bool_] | None
) -> list[Check]:
    checks = [Check(name, np.isnat(ts), lambda _row: "timestamp is missing (None/NaT)")]
    if naive is not None:
        checks.append(
            Check(name, naive, lambda _row: "timestamp is naive (no timezone); give aware ones")
        )
    return checks


def _all_str(values: Iterable[object]) -> bool:
    return set(map(type, values)) <= {str}


def _bad_texts(items: list[Any]) -> NDArray[np.bool_]:
    """The mask of ``items`` that are not non-empty valid text: C-level passes when all
    are ASCII ``str`` without NUL (the common case), else a check per item."""
    n = len(items)
    if not _all_str(items):
        return np.fromiter(
            (not isinstance(v, str) or not v or _bad_text(v) for v in items), dtype=bool, count=n
        )
    bad = np.zeros(n, dtype=bool)
    if "" in items:
        bad |= np.fromiter(map(operator.not_, items), dtype=bool, count=n)
    joined = "".join(items)
    if "\x00" in joined or not joined.isascii():
        bad |= np.fromiter(map(_bad_text, items), dtype=bool, count=n)
    return bad


def text_checks(col: ColumnSpec, values: NDArray[np.object_]) -> list[Check]:
    n = len(values)
    bad = np.zeros(n, dtype=bool)
    for rows in row_blocks(n):  # blocks: the GIL is handed over between them
        bad[rows] = _bad_texts(block_items(values, rows))

    def reason(row: int) -> str:
        value = values[row]
        if value is None:
            return "is missing (None)"
        if not isinstance(value, str):
            return f"must be text, got {type_name(value)} {value!r:.40}"
        if not value:
            return "is empty"
        if "\x00" in value:
            return "contains a NUL character"
        return "is not valid Unicode (lone surrogate)"

    checks = [Check(col.name, bad, reason)]
    if col.choices is not None:
        choices = col.choices
        allowed = np.array(choices, dtype=object)
        wrong = np.zeros(n, dtype=bool)
        for rows in row_blocks(n):
            wrong[rows] = ~bad[rows] & ~np.isin(values[rows], allowed)
        checks.append(
            Check(col.name, wrong, lambda row: f"{values[row]!r:.40} is not one of {choices}")
        )
    return checks


def _bad_text(value: str) -> bool:
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def float_check(col: ColumnSpec, values: NDArray[np.float64]) -> Check:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values)
        if col.low is not None:
            ok &= values >= col.low
        if col.high is not None:
            ok &= values <= col.high
    if col.nullable:
        ok |= np.isnan(values)

    def reason(row: int) -> str:
        value = float(values[row])
        if math.isnan(value):
            return "is missing (None/NaN)"
        if math.isinf(value):
            return f"{value!r} is not finite"
        if col.high is None:
            return f"{value!r} is negative"
        return f"{value!r} is outside [{col.low:g}, {col.high:g}]"

    return Check(col.name, ~ok, reason)


def levels_check(
    col: ColumnSpec, values: Callable[[], NDArray[np.object_]], flat: FlatLevels | None = None
) -> Check:
    """The rule of a levels column; ``values()`` gives its objects (read only when needed:
    a batch's ``flat`` form of the same levels is checked in bulk, objects only named)."""
    if flat is not None:
        bad = check_flat(flat, col.descending)
        return Check(col.name, bad, lambda row: str(level_problem(values()[row], col.descending)))
    sides = values().tolist()
    bulk = check_sides(sides, col.descending)  # a built batch's form: checked in bulk
    if bulk is not None:
        return Check(col.name, bulk, lambda row: str(level_problem(sides[row], col.descending)))
    reasons = [level_problem(levels, col.descending) for levels in sides]
    bad = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    return Check(col.name, bad, lambda row: str(reasons[row]))


def level_problem(levels: object, descending: bool) -> str | None:
    """Why a stored side of a book is invalid, or None."""
    strict = type(levels) is list and all(
        type(level) is tuple
        and len(level) == 2
        and type(level[0]) is float
        and type(level[1]) is float
        for level in levels
    )
    if not strict:
        parsed = parse_levels(levels, descending)
        if isinstance(parsed, str):
            return parsed
        return "levels are not normalised (float pairs in a list): build batches with from_columns"
    assert isinstance(levels, list)
    previous = math.inf if descending else -math.inf
    for k, (price, size) in enumerate(levels):
        if not 0.0 <= price <= 1.0:
            return f"level {k} price {price!r} is outside [0, 1]"
        if not 0.0 <= size < math.inf:
            return f"level {k} size {size!r} is negative or not finite"
        if (price > previous) if descending else (price < previous):
            order = "descending" if descending else "ascending"
            return f"levels are not sorted best-first (by {order} price) at level {k}"
        previous = price
    return None
