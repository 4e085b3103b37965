"""Conversion of the input forms (numpy arrays, sequences, datetimes, numeric
strings, order-book levels) into a batch's column arrays, with the structural
checks that make construction fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pmstore.batches.spec import _OBJECT_DTYPE, TS_DTYPE, ColumnKind, Level
from pmstore.errors import RowProblem

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_UNIX_EPOCH_NAIVE = datetime(1970, 1, 1)


_ONE_US = timedelta(microseconds=1)


_NAT = np.iinfo(np.int64).min  # the int64 value of NaT


class _ColumnError(Exception):
    """A column cannot be converted; the message says why."""


def _type(value: object) -> str:
    return type(value).__name__


def _as_sequence(values: Any) -> Sequence[Any]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
        raise _ColumnError(f"expected a numpy array or a sequence, got {_type(values)}")
    return values


def _check_1d(values: NDArray[Any]) -> None:
    if values.ndim != 1:
        raise _ColumnError(f"expected a 1-D array, got shape {values.shape}")


def _convert_ts(values: Any) -> tuple[NDArray[np.datetime64], NDArray[np.bool_] | None]:
    """datetime64 of any unit, or aware datetimes (naive ones flagged), to datetime64[us]."""
    if isinstance(values, np.ndarray):
        _check_1d(values)
        if values.dtype.kind == "M":
            return values.astype(TS_DTYPE), None  # astype copies
        if values.dtype != _OBJECT_DTYPE:
            raise _ColumnError(f"expected datetime64 or datetime objects, got dtype {values.dtype}")
        items: Sequence[Any] = values.tolist()
    else:
        items = _as_sequence(values)
    micros = np.empty(len(items), dtype=np.int64)
    naive: list[int] = []
    for i, value in enumerate(items):
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                naive.append(i)
                micros[i] = (value.replace(tzinfo=None) - _UNIX_EPOCH_NAIVE) // _ONE_US
            else:
                micros[i] = (value - _UNIX_EPOCH) // _ONE_US
        elif isinstance(value, np.datetime64):
            micros[i] = value.astype(TS_DTYPE).astype(np.int64)  # NaT stays NaT
        elif value is None:
            micros[i] = _NAT
        else:
            raise _ColumnError(
                f"expected timezone-aware datetimes or datetime64, got {_type(value)} at row {i}"
            )
    naive_mask = None
    if naive:
        naive_mask = np.zeros(len(items), dtype=bool)
        naive_mask[naive] = True
    return micros.view(TS_DTYPE), naive_mask


def _convert_float(values: Any) -> NDArray[np.float64]:
    """Numbers to float64 (a copy); None becomes NaN; text, bools and dates are refused."""
    array = values if isinstance(values, np.ndarray) else np.asarray(_as_sequence(values))
    _check_1d(array)
    if array.size == 0:
        return np.zeros(0, dtype=np.float64)
    if array.dtype.kind in "fiu":
        return array.astype(np.float64)
    if array.dtype != _OBJECT_DTYPE:
        raise _ColumnError(f"expected numbers, got {array.dtype} values")
    out = np.empty(len(array), dtype=np.float64)
    for i, value in enumerate(array.tolist()):
        if value is None:
            out[i] = np.nan
        elif isinstance(value, int | float | Decimal | np.number) and not isinstance(
            value, bool | np.bool_
        ):
            out[i] = float(value)
        else:
            raise _ColumnError(f"expected numbers, got {_type(value)} at row {i}")
    return out


def _convert_text(values: Any) -> NDArray[np.object_]:
    """A str array or a sequence to an object array (a copy); items are checked later."""
    if isinstance(values, np.ndarray):
        _check_1d(values)
        if values.dtype.kind == "U" or values.dtype == _OBJECT_DTYPE:
            return values.astype(object)  # astype copies
        raise _ColumnError(f"expected text, got {values.dtype} values")
    items = _as_sequence(values)
    return np.fromiter(items, dtype=object, count=len(items))


def _convert_levels(values: Any) -> NDArray[np.object_]:
    """One item per row, kept as given (``_complete`` parses them)."""
    items = values if isinstance(values, np.ndarray) else _as_sequence(values)
    if isinstance(items, np.ndarray) and items.ndim == 0:
        raise _ColumnError("expected one list of levels per row, got a scalar")
    return np.fromiter(iter(items), dtype=object, count=len(items))


_CONVERTERS: dict[ColumnKind, Callable[[Any], NDArray[Any]]] = {
    "float": _convert_float,
    "text": _convert_text,
    "levels": _convert_levels,
}


def _length_problems(arrays: Sequence[tuple[str, NDArray[Any]]]) -> list[RowProblem]:
    if not arrays:
        return []
    first, reference = arrays[0][0], len(arrays[0][1])
    return [
        RowProblem(None, name, f"has {len(array)} values but {first!r} has {reference}")
        for name, array in arrays[1:]
        if len(array) != reference
    ]


def _number(value: object) -> float | None:
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


def _parse_levels(levels: object, descending: bool) -> list[Level] | str:
    """Levels as (float, float) tuples sorted best-first, or the reason they are malformed."""
    if isinstance(levels, np.ndarray):
        levels = levels.tolist()
    if not isinstance(levels, list | tuple):
        return f"expected a list of (price, size) levels, got {_type(levels)}"
    parsed: list[Level] = []
    for k, level in enumerate(levels):
        if not isinstance(level, list | tuple) or len(level) != 2:
            return f"level {k} is not a (price, size) pair: {level!r:.60}"
        price, size = _number(level[0]), _number(level[1])
        if price is None or size is None:
            return f"level {k} holds a value that is not a number: {level!r:.60}"
        parsed.append((price, size))
    parsed.sort(key=itemgetter(0), reverse=descending)
    return parsed
