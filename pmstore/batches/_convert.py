"""Conversion of the input forms (numpy arrays, sequences, datetimes, numeric
strings, order-book levels) into a batch's column arrays, with the structural
checks that make construction fail.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pmstore._utc import UNIX_EPOCH
from pmstore.batches._blocks import all_of_types, object_array, row_blocks
from pmstore.batches._spec import OBJECT_DTYPE, TS_DTYPE, ColumnKind, Level
from pmstore.errors import RowProblem

T = TypeVar("T")

_UNIX_EPOCH_NAIVE = UNIX_EPOCH.replace(tzinfo=None)


_ONE_US = timedelta(microseconds=1)


_NAT = np.iinfo(np.int64).min  # the int64 value of NaT

_PLAIN_NUMBERS: frozenset[type] = frozenset({float, int, type(None)})


class ColumnError(Exception):
    """A column cannot be converted; the message says why.

    ``rows`` holds the first bad rows as (row, reason) (none: the whole column is
    at fault), ``total`` counts them all.
    """

    def __init__(
        self, reason: str, rows: Sequence[tuple[int, str]] = (), total: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rows = list(rows)
        self.total = len(self.rows) if total is None else total

    def problems(self, column: str) -> list[RowProblem]:
        """The problems to report for ``column``: one per bad row named, else one for it."""
        if not self.rows:
            return [RowProblem(None, column, self.reason)]
        return [RowProblem(row, column, reason) for row, reason in self.rows]


_ROWS_NAMED = 20  # bad rows named per column; the others are counted


class _BadRows:
    """Collects the rows of one column that cannot be converted (the first ones named)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str]] = []
        self.total = 0

    def add(self, row: int, reason: str) -> None:
        self.total += 1
        if len(self.rows) < _ROWS_NAMED:
            self.rows.append((row, reason))

    def raise_any(self, what: str) -> None:
        if self.total:
            raise ColumnError(f"{self.total} value(s) are not {what}", self.rows, self.total)


def _shown(value: object) -> str:
    return f"{type_name(value)} {value!r:.40}"


def type_name(value: object) -> str:
    return type(value).__name__


def _as_sequence(values: Any) -> Sequence[Any]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
        raise ColumnError(f"expected a numpy array or a sequence, got {type_name(values)}")
    return values


def _check_1d(values: NDArray[Any]) -> None:
    if values.ndim != 1:
        raise ColumnError(f"expected a 1-D array, got shape {values.shape}")


def convert_ts(values: Any) -> tuple[NDArray[np.datetime64], NDArray[np.bool_] | None]:
    """datetime64 of any unit, or aware datetimes (naive ones flagged), to datetime64[us]."""
    if isinstance(values, np.ndarray):
        _check_1d(values)
        if values.dtype.kind == "M":
            return values.astype(TS_DTYPE), None  # astype copies
        if values.dtype != OBJECT_DTYPE:
            raise ColumnError(f"expected datetime64 or datetime objects, got dtype {values.dtype}")
        items: Sequence[Any] = values.tolist()
    else:
        items = _as_sequence(values)
    aware = _aware_micros(items)
    if aware is not None:
        return aware.view(TS_DTYPE), None
    micros = np.empty(len(items), dtype=np.int64)
    naive: list[int] = []
    bad = _BadRows()
    for i, value in enumerate(items):
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                naive.append(i)
                micros[i] = (value.replace(tzinfo=None) - _UNIX_EPOCH_NAIVE) // _ONE_US
            else:
                micros[i] = (value - UNIX_EPOCH) // _ONE_US
        elif isinstance(value, np.datetime64):
            micros[i] = value.astype(TS_DTYPE).astype(np.int64)  # NaT stays NaT
        elif value is None:
            micros[i] = _NAT
        else:
            micros[i] = _NAT
            bad.add(i, f"expected a timezone-aware datetime or datetime64, got {_shown(value)}")
    bad.raise_any("timestamps")
    naive_mask = None
    if naive:
        naive_mask = np.zeros(len(items), dtype=bool)
        naive_mask[naive] = True
    return micros.view(TS_DTYPE), naive_mask


def _aware_micros(items: Sequence[Any]) -> NDArray[np.int64] | None:
    """Microseconds since 1970 of timezone-aware datetimes, in three C-level passes (~2.5x
    the row loop); None unless every item is an aware ``datetime``."""
    out = np.empty(len(items), dtype=np.int64)
    for rows in row_blocks(len(items)):  # blocks: the GIL is handed over between them
        part = items[rows]
        if set(map(type, part)) - {datetime} or None in set(map(attrgetter("tzinfo"), part)):
            return None
        try:
            since = map(operator.sub, part, repeat(UNIX_EPOCH))
            out[rows] = np.fromiter(
                map(operator.floordiv, since, repeat(_ONE_US)), dtype=np.int64, count=len(part)
            )
        except TypeError:  # a tzinfo whose utcoffset() is None: the row loop flags it as naive
            return None
    return out


def _convert_float(values: Any) -> NDArray[np.float64]:
    """Numbers to float64 (a copy); None becomes NaN; text, bools and dates are refused."""
    if not isinstance(values, np.ndarray):
        items = _as_sequence(values)
        if all_of_types(items, _PLAIN_NUMBERS):  # floats, ints, None (NaN): in C, by blocks
            numbers = np.empty(len(items), dtype=np.float64)
            for rows in row_blocks(len(items)):
                numbers[rows] = np.array(items[rows], dtype=np.float64).reshape(-1)
            return numbers
    else:
        _check_1d(values)
        if values.dtype.kind in "fiu":
            return values.astype(np.float64)
        if values.dtype != OBJECT_DTYPE:
            raise ColumnError(f"expected numbers, got {values.dtype} values")
        items = values.tolist()
    # Anything else item by item, each bad row named (a bool is not taken as 1.0).
    out = np.empty(len(items), dtype=np.float64)
    bad = _BadRows()
    for i, value in enumerate(items):
        if value is None:
            out[i] = np.nan
        elif isinstance(value, int | float | Decimal | np.number) and not isinstance(
            value, bool | np.bool_
        ):
            out[i] = float(value)
        else:
            bad.add(i, f"expected a number, got {_shown(value)}")
    bad.raise_any("numbers")
    return out


def _convert_text(values: Any) -> NDArray[np.object_]:
    """A str array or a sequence to an object array (a copy); items are checked later."""
    if isinstance(values, np.ndarray):
        _check_1d(values)
        if values.dtype.kind == "U" or values.dtype == OBJECT_DTYPE:
            return object_array(values)  # a copy, by blocks
        raise ColumnError(f"expected text, got {values.dtype} values")
    return object_array(_as_sequence(values))


def _convert_levels(values: Any) -> NDArray[np.object_]:
    """One item per row, kept as given (``_complete`` parses them)."""
    items = values if isinstance(values, np.ndarray) else _as_sequence(values)
    if isinstance(items, np.ndarray) and items.ndim == 0:
        raise ColumnError("expected one list of levels per row, got a scalar")
    return object_array(items)


CONVERTERS: dict[ColumnKind, Callable[[Any], NDArray[Any]]] = {
    "float": _convert_float,
    "text": _convert_text,
    "levels": _convert_levels,
}


def length_problems(arrays: Sequence[tuple[str, NDArray[Any]]]) -> list[RowProblem]:
    if not arrays:
        return []
    first, reference = arrays[0][0], len(arrays[0][1])
    return [
        RowProblem(None, name, f"has {len(array)} values but {first!r} has {reference}")
        for name, array in arrays[1:]
        if len(array) != reference
    ]


def number(value: object) -> float | None:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    if kind is str:  # Polymarket's "0.48": the common case first
        try:
            return float(value)  # type: ignore[arg-type]
        except ValueError:
            return None
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def level_pairs(levels: object, value: Callable[[object], T | None]) -> list[tuple[T, T]] | str:
    """A side's levels (dicts with price and size, or pairs) as ``(value(price),
    value(size))`` in the order given, or the reason they are malformed."""
    if isinstance(levels, np.ndarray):
        levels = levels.tolist()
    if not isinstance(levels, list | tuple):
        return f"expected a list of (price, size) levels, got {type_name(levels)}"
    pairs: list[tuple[T, T]] = []
    for k, level in enumerate(levels):
        if isinstance(level, Mapping):  # Polymarket's {"price": "0.48", "size": "1234.5"}
            if "price" not in level or "size" not in level:
                return f"level {k} has no 'price' and 'size': {level!r:.60}"
            level = (level["price"], level["size"])
        if not isinstance(level, list | tuple) or len(level) != 2:
            return f"level {k} is not a (price, size) pair: {level!r:.60}"
        price, size = value(level[0]), value(level[1])
        if price is None or size is None:
            return f"level {k} holds a value that is not a number: {level!r:.60}"
        pairs.append((price, size))
    return pairs


def parse_levels(levels: object, descending: bool) -> list[Level] | str:
    """Levels as (float, float) tuples sorted best-first, or the reason they are malformed."""
    parsed = level_pairs(levels, number)
    if isinstance(parsed, str):
        return parsed
    parsed.sort(key=itemgetter(0), reverse=descending)
    return parsed
