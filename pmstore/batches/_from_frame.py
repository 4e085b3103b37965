"""A pandas or polars DataFrame, or a pyarrow Table, as a pmstore batch.

``ColumnBatch.from_frame`` (and so ``as_batch``, ``Writer.copy_prices``, ``copy_orderbooks``,
``copy_trades``) hands a frame here; the frame's columns become the batch's
columns, then the batch is validated exactly like any other (values checked by
``problems()``, rows numbered by position from 0, whatever a pandas index says).

Column conversion, by the column's type:

- timestamps (``ts``): timezone-aware timestamps of any unit and zone become
  ``datetime64[us]`` UTC (an instant is an instant: the zone only changes how it
  is shown); nanoseconds are truncated to microseconds (PostgreSQL's
  resolution). A naive timestamp column is refused like naive ``datetime``
  objects: every row is reported "timestamp is naive". Nulls are missing
  timestamps. A pandas object column of ``datetime`` objects goes through the
  batch's own conversion (naive items flagged row by row).
- numbers: float64 is used **without a copy** (a read-only view of the frame's
  buffer) when the column has no nulls and one chunk; float32, integers and
  decimals are converted; nulls become NaN (NULL where the column is nullable,
  a "missing" problem where it is not). Booleans and text are refused.
- text (``token_id``, ``side``, ``trade_id``): string, large string, string
  view and dictionary (categorical) columns become ``str`` objects (one Python
  object a value: the unavoidable copy); nulls become None. Other types are
  refused.
- order-book levels (``bids``, ``asks``): lists of (price, size) pairs, as
  arrow lists or pandas objects, parsed like any batch's levels.

Structural problems (a column missing, unknown, of a refused type) raise
``BatchValidationError`` naming the column (``row=None``).

Zero-copy caveat: a batch built from float64 columns shares their memory; do
not modify the frame while the write that took it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from pmstore._optional import require
from pmstore.batches._spec import ColumnSpec
from pmstore.errors import BatchValidationError, RowProblem

__all__ = [
    "FRAME_TYPES",
    "FrameColumns",
    "FrameLike",
    "frame_column_names",
    "frame_columns",
    "is_frame",
]

FRAME_TYPES: Final = frozenset(
    {
        ("pandas", "DataFrame"),
        ("polars", "DataFrame"),
        ("polars", "LazyFrame"),  # refused with a hint: collect() it first
        ("pyarrow", "Table"),
        ("pyarrow", "RecordBatch"),
    }
)
"""(top-level module, class name) of the frame types ``is_frame`` recognises."""


class FrameLike(Protocol):
    """The static type of a pandas or polars DataFrame or a pyarrow Table (for signatures;
    at run time ``is_frame`` decides)."""

    @property
    def columns(self) -> Any:
        """The frame's columns."""


_TS_DTYPE: Final = np.dtype("datetime64[us]")
_NAT: Final = np.iinfo(np.int64).min
_US_PER_UNIT: Final = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}


class _ColumnRefusedError(Exception):
    """A frame column cannot become a batch column; the message says why."""


def is_frame(data: object) -> bool:
    """Whether ``data`` is a pandas/polars DataFrame or a pyarrow Table/RecordBatch.

    Looks only at the type's module and name: imports none of those libraries.
    """
    kind = type(data)
    return (kind.__module__.partition(".")[0], kind.__name__) in FRAME_TYPES


@dataclass(frozen=True, slots=True)
class FrameColumns:
    """A frame's columns converted to a batch's representations (see the module notes)."""

    converted: dict[str, NDArray[Any]]
    """Columns ready for the batch (float64 without nulls: views of the frame's buffers)."""
    raw: dict[str, NDArray[Any]]
    """pandas object columns, left to ``from_columns``' own conversion and checks."""
    naive: bool
    """Whether a timestamp column was naive (every row is then reported)."""
    rows: int


def frame_column_names(table: str, frame: Any) -> list[str]:
    """The names of ``frame``'s columns; BatchValidationError for a polars LazyFrame."""
    if type(frame).__name__ == "LazyFrame":
        reason = "a polars LazyFrame has no rows yet: pass frame.collect()"
        raise BatchValidationError(table, [RowProblem(None, "*", reason)])
    library = type(frame).__module__.partition(".")[0]
    labels = frame.column_names if library == "pyarrow" else frame.columns
    return [str(name) for name in labels]


def frame_columns(table: str, spec: Sequence[ColumnSpec], frame: Any) -> FrameColumns:
    """``frame``'s columns named in ``spec``, converted (``table`` names the errors).

    Raises ``BatchValidationError`` (``row=None``) for a column of a refused
    type, and ConfigurationError when pyarrow is not installed. Costs nothing
    for float64 columns without nulls, a conversion for other numbers and
    timestamps, one ``str`` per text value, a Python parse of levels.
    """
    library = type(frame).__module__.partition(".")[0]
    names = set(frame_column_names(table, frame))
    if library == "polars":
        frame = frame.to_arrow()
    columns: dict[str, NDArray[Any]] = {}
    raw: dict[str, NDArray[Any]] = {}
    problems: list[RowProblem] = []
    naive = False
    for col in spec:
        if col.name not in names:
            continue
        try:
            if library == "pandas":
                converted = _pandas_column(frame[col.name], col.kind)
            else:
                converted = _arrow_column(frame.column(col.name), col.kind)
        except _ColumnRefusedError as exc:
            problems.append(RowProblem(None, col.name, str(exc)))
            continue
        if converted is None:
            raw[col.name] = frame[col.name].to_numpy(dtype=object)
            continue
        columns[col.name], is_naive = converted
        naive |= is_naive
    if problems:
        raise BatchValidationError(table, problems)
    return FrameColumns(columns, raw, naive, len(frame))


# -- pandas ------------------------------------------------------------------------------


def _pandas_column(series: Any, kind: str) -> tuple[NDArray[Any], bool] | None:
    """A pandas column converted; None for an object column left to ``from_columns``."""
    dtype = series.dtype
    if kind == "levels":
        return series.to_numpy(dtype=object), False
    if dtype == np.dtype(object):
        if kind == "text":
            return series.to_numpy(dtype=object, copy=True), False
        return None
    if kind == "float" and dtype == np.dtype(np.float64):
        return series.to_numpy(copy=False), False  # a view of the frame's buffer
    pa = require("pyarrow")
    try:
        array = pa.chunked_array([pa.array(series, from_pandas=True)])
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise _ColumnRefusedError(f"cannot be read as {kind}: {exc}") from exc
    return _arrow_column(array, kind)


# -- arrow -------------------------------------------------------------------------------


def _arrow_column(column: Any, kind: str) -> tuple[NDArray[Any], bool]:
    """An arrow (chunked) array converted to the batch's representation of ``kind``."""
    pa = require("pyarrow")
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column], type=column.type)
    converter: Callable[[Any, Any], tuple[NDArray[Any], bool]] = _ARROW_CONVERTERS[kind]
    return converter(column, pa)


def _one_chunk(column: Any, pa: Any) -> Any:
    """The column as one contiguous array (no copy when it has a single chunk)."""
    if column.num_chunks == 1:
        return column.chunk(0)
    if column.num_chunks == 0:
        return pa.array([], type=column.type)
    return pa.concat_arrays(column.chunks)


def _arrow_ts(column: Any, pa: Any) -> tuple[NDArray[Any], bool]:
    kind = column.type
    if not pa.types.is_timestamp(kind):
        raise _ColumnRefusedError(f"expected timezone-aware timestamps, got {kind}")
    array = _one_chunk(column, pa).cast(pa.int64())  # epoch values of the unit, zone-free
    if array.null_count:
        array = array.fill_null(_NAT)
    values = array.to_numpy(zero_copy_only=False)
    per_us = _US_PER_UNIT[kind.unit]
    if per_us == 1:
        ts = values.view(_TS_DTYPE)
    else:
        ts = values.view(f"datetime64[{kind.unit}]").astype(_TS_DTYPE)  # NaT stays NaT
    return ts, kind.tz is None


def _arrow_float(column: Any, pa: Any) -> tuple[NDArray[Any], bool]:
    kind = column.type
    if pa.types.is_boolean(kind) or not (
        pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
    ):
        raise _ColumnRefusedError(f"expected numbers, got {kind}")
    array = _one_chunk(column, pa)
    if kind != pa.float64():
        array = array.cast(pa.float64())
    if array.null_count == 0:
        return array.to_numpy(zero_copy_only=True), False
    return array.to_numpy(zero_copy_only=False), False  # nulls become NaN (a copy)


def _arrow_text(column: Any, pa: Any) -> tuple[NDArray[Any], bool]:
    kind = column.type
    array = _one_chunk(column, pa)
    if pa.types.is_dictionary(kind) and _is_text(kind.value_type, pa):
        if array.null_count == 0:  # one str object per distinct value, shared
            words = array.dictionary.to_numpy(zero_copy_only=False)
            return words[array.indices.to_numpy(zero_copy_only=False)], False
        array = array.dictionary_decode()
    elif not _is_text(kind, pa):
        raise _ColumnRefusedError(f"expected text, got {kind}")
    return array.to_numpy(zero_copy_only=False), False


def _is_text(kind: Any, pa: Any) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or kind == pa.string_view()
    )


def _arrow_levels(column: Any, pa: Any) -> tuple[NDArray[Any], bool]:
    items = _one_chunk(column, pa).to_pylist()
    return np.fromiter(iter(items), dtype=object, count=len(items)), False


_ARROW_CONVERTERS: Final[Mapping[str, Callable[[Any, Any], tuple[NDArray[Any], bool]]]] = {
    "ts": _arrow_ts,
    "float": _arrow_float,
    "text": _arrow_text,
    "levels": _arrow_levels,
}
