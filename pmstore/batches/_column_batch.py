"""``ColumnBatch``, the base of the typed batches: constructors, checks,
selection, index order and digest; and ``as_batch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, cast, dataclass_transform

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from pmstore.batches._checks import (
    Check,
    float_check,
    levels_check,
    text_checks,
    ts_checks,
)
from pmstore.batches._convert import CONVERTERS, ColumnError, convert_ts, length_problems, type_name
from pmstore.batches._digest import batch_digest
from pmstore.batches._from_frame import FrameLike, frame_column_names, frame_columns, is_frame
from pmstore.batches._levels import FlatLevels
from pmstore.batches._spec import DTYPE_OF_KIND, ColumnSpec, column, spec_of
from pmstore.errors import BatchValidationError, RowProblem

__all__ = ["ColumnBatch", "as_batch", "table_batch"]


class ColumnBatch:
    """Base class of the typed batches: the shared constructors, checks and digest.

    Subclasses are declared with :func:`table_batch`: frozen, slotted
    dataclasses whose :func:`~pmstore.batches._spec.column` fields are the
    table's columns (in COPY order), followed by ``naive_ts``.
    """

    __slots__ = ()

    TABLE: ClassVar[str]
    """The table the batch is written to."""
    COLUMNS: ClassVar[tuple[str, ...]]
    """The table's columns in COPY order."""
    REQUIRED: ClassVar[tuple[str, ...]]
    """The columns a caller must give; the others default to NULL (or are derived)."""
    RECORD: ClassVar[type[BaseModel]]
    """The pydantic model of one row."""
    SPEC: ClassVar[tuple[ColumnSpec, ...]]
    """How each column is stored and checked, in COPY order (from the :func:`column` fields)."""

    if TYPE_CHECKING:
        ts: NDArray[np.datetime64]
        token_id: NDArray[np.object_]
        naive_ts: NDArray[np.bool_] | None

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def __post_init__(self) -> None:
        """Check the arrays' types and lengths, then make them read-only.

        Raises ``BatchValidationError`` (``row=None``) naming each bad column.
        """
        problems: list[RowProblem] = []
        arrays: list[tuple[str, NDArray[Any]]] = []
        for col in self.SPEC:
            if self._unbuilt(col.name):
                continue  # made on first read from the batch's own checked arrays
            value = getattr(self, col.name)
            expected = DTYPE_OF_KIND[col.kind]
            if not isinstance(value, np.ndarray) or value.ndim != 1:
                problems.append(RowProblem(None, col.name, "must be a 1-D numpy array"))
            elif value.dtype != expected:
                problems.append(
                    RowProblem(None, col.name, f"must have dtype {expected}, not {value.dtype}")
                )
            else:
                arrays.append((col.name, value))
        naive = self.naive_ts
        if naive is not None:
            if not isinstance(naive, np.ndarray) or naive.ndim != 1 or naive.dtype != np.bool_:
                problems.append(RowProblem(None, "naive_ts", "must be a 1-D bool array or None"))
            else:
                arrays.append(("naive_ts", naive))
        problems.extend(length_problems(arrays))
        if problems:
            raise BatchValidationError(self.TABLE, problems)
        for _, array in arrays:
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.ts)

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> Self:
        """Build a batch from a mapping of column name to a numpy array or a sequence.

        ``ts`` takes datetime64 (any unit, taken as UTC) or timezone-aware
        ``datetime`` objects (any zone); optional columns may be left out.
        Raises ``BatchValidationError`` (``row=None``) when a column is missing,
        unknown, of the wrong type or length; value problems are left for
        ``problems()``/``validated()``. Costs one copy of every array (a Python
        loop only for ``datetime`` objects, numeric columns given as object
        sequences, text sequences and order-book levels).
        """
        converted, n, naive = cls._converted(columns)
        return cls._assembled(converted, n, naive)

    @classmethod
    def _converted(
        cls, columns: Mapping[str, Any]
    ) -> tuple[dict[str, NDArray[Any]], int, NDArray[np.bool_] | None]:
        """``from_columns``' conversion of each column given, with its structural checks:
        the converted arrays, the row count and the naive-timestamp flags."""
        if not isinstance(columns, Mapping):
            raise BatchValidationError(
                cls.TABLE,
                [RowProblem(None, "*", f"expected a mapping of columns, got {type_name(columns)}")],
            )
        problems = cls._name_problems([str(name) for name in columns])
        converted: dict[str, NDArray[Any]] = {}
        naive: NDArray[np.bool_] | None = None
        unnamed = 0  # bad rows counted but not named
        for col in cls.SPEC:
            if col.name not in columns:
                continue
            try:
                if col.kind == "ts":
                    converted[col.name], naive = convert_ts(columns[col.name])
                else:
                    converted[col.name] = CONVERTERS[col.kind](columns[col.name])
            except ColumnError as exc:
                problems.extend(exc.problems(col.name))
                unnamed += exc.total - len(exc.rows)
        problems.extend(length_problems(list(converted.items())))
        if problems:
            raise BatchValidationError(cls.TABLE, problems, len(problems) + unnamed)
        return converted, len(next(iter(converted.values()))), naive

    @classmethod
    def from_frame(cls, frame: Any) -> Self:
        """Build a batch from a pandas or polars DataFrame or a pyarrow Table (or RecordBatch).

        Columns are converted as ``pmstore.batches._from_frame`` describes
        (float64 columns without nulls are used without a copy); the batch is
        not yet validated. Raises ``BatchValidationError`` (``row=None``) for a
        missing, unknown or refused column, and ConfigurationError when pyarrow
        is not installed. Costs a conversion of the columns that need one.
        """
        problems = cls._name_problems(frame_column_names(cls.TABLE, frame))
        if problems:
            raise BatchValidationError(cls.TABLE, problems)
        got = frame_columns(cls.TABLE, cls.SPEC, frame)
        if got.raw:  # object columns: from_columns converts and checks them (copying all)
            batch = cls.from_columns({**got.converted, **got.raw})
        else:
            batch = cls._assembled(got.converted, got.rows, None)
        if got.naive:
            batch = dataclasses.replace(batch, naive_ts=np.ones(len(batch), dtype=bool))  # type: ignore[type-var]
        return batch

    @classmethod
    def _name_problems(cls, names: Sequence[str]) -> list[RowProblem]:
        """The required columns missing from ``names`` and the names that are no column."""
        problems = [RowProblem(None, name, "is missing") for name in cls.REQUIRED]
        problems = [p for p in problems if p.column not in names]
        problems.extend(
            RowProblem(None, name, f"is not a column of {cls.TABLE} (known: {cls.COLUMNS})")
            for name in names
            if name not in cls.COLUMNS
        )
        return problems

    @classmethod
    def _assembled(
        cls, columns: dict[str, NDArray[Any]], n: int, naive: NDArray[np.bool_] | None
    ) -> Self:
        """The batch of converted ``columns`` (not copied): the optional ones left out are
        filled with NULLs, then the table's derived columns are completed."""
        cls._filled(columns, n)
        extras = cls._complete(columns)
        return cls(**columns, naive_ts=naive, **extras)

    @classmethod
    def _filled(cls, columns: dict[str, NDArray[Any]], n: int) -> None:
        """Fill the optional columns left out of ``columns`` with NULLs, in place."""
        for col in cls.SPEC:
            if col.name not in columns:
                columns[col.name] = (
                    np.full(n, np.nan) if col.kind == "float" else np.full(n, None, dtype=object)
                )

    @classmethod
    def from_rows(cls, rows: Sequence[BaseModel | tuple[Any, ...]]) -> Self:
        """Build a batch from records (``RECORD`` instances) or tuples in ``COLUMNS`` order.

        Trailing optional values may be left out of a tuple. Raises
        ``BatchValidationError`` when a row is neither a record nor a tuple of a
        valid length (naming the row), or for the structural problems of
        ``from_columns``. Costs a Python loop over the rows, then ``from_columns``.
        """
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Sequence):
            raise BatchValidationError(
                cls.TABLE,
                [RowProblem(None, "*", f"expected a sequence of rows, got {type_name(rows)}")],
            )
        columns = cls.COLUMNS
        fast = _transposed(rows, cls.RECORD, columns)
        if fast is not None:
            return cls.from_columns(dict(zip(columns, fast, strict=True)))
        shortest = max(i for i, col in enumerate(cls.SPEC) if col.required) + 1
        padding = (None,) * len(columns)
        getter = attrgetter(*columns)
        record_type = cls.RECORD
        values: list[tuple[Any, ...]] = []
        problems: list[RowProblem] = []
        for i, row in enumerate(rows):
            if isinstance(row, record_type):
                values.append(getter(row))
            elif isinstance(row, tuple | list):
                if shortest <= len(row) <= len(columns):
                    values.append(tuple(row) + padding[len(row) :])
                else:
                    where = columns[len(row)] if len(row) < shortest else "*"
                    problems.append(
                        RowProblem(
                            i,
                            where,
                            f"row has {len(row)} values; expected {shortest} to {len(columns)}"
                            f" in the order {', '.join(columns)}",
                        )
                    )
            else:
                problems.append(
                    RowProblem(
                        i,
                        "*",
                        f"expected a {record_type.__name__} or a tuple, got {type_name(row)}",
                    )
                )
        if problems:
            raise BatchValidationError(cls.TABLE, problems[:20], len(problems))
        if not values:
            return cls.from_columns({name: [] for name in columns})
        transposed = list(zip(*values, strict=True))
        return cls.from_columns(
            {name: list(col) for name, col in zip(columns, transposed, strict=True)}
        )

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> dict[str, Any]:
        """Normalise/derive columns in place before the batch is built (per table); returns
        other constructor arguments (an order-book batch's flat ``levels``)."""
        return {}

    # -- validation ---------------------------------------------------------------

    def problems(self, limit: int = 20) -> tuple[list[RowProblem], NDArray[np.bool_]]:
        """Find the rows that break a value rule.

        Returns the first ``limit`` problems ordered by row (then column order)
        and a boolean mask of every bad row (``batch.select(~mask)`` keeps the
        good ones). Numeric and timestamp rules are whole-column numpy
        expressions; text columns cost a few C-level passes over the objects;
        order-book levels a Python loop over the levels. Raises nothing.
        """
        found, mask, _ = self._scan(limit)
        return found, mask

    def validated(self) -> Self:
        """Return self if no row breaks a rule, else raise ``BatchValidationError``.

        The error lists the first 20 problems and counts them all. Costs one
        ``problems()`` pass.
        """
        found, _, total = self._scan(20)
        if total:
            raise BatchValidationError(self.TABLE, found, total)
        return self

    def _scan(self, limit: int) -> tuple[list[RowProblem], NDArray[np.bool_], int]:
        checks = self._checks()
        mask = np.zeros(len(self), dtype=bool)
        total = 0
        candidates: list[tuple[int, int, Check]] = []
        for order, check in enumerate(checks):
            bad_rows = np.flatnonzero(check.bad)
            if not bad_rows.size:
                continue
            total += bad_rows.size
            mask |= check.bad
            candidates.extend((row, order, check) for row in bad_rows[: max(limit, 0)].tolist())
        candidates.sort(key=itemgetter(0, 1))
        found = [RowProblem(row, c.column, c.reason(row)) for row, _, c in candidates[:limit]]
        return found, mask, total

    def _checks(self) -> list[Check]:
        checks: list[Check] = []
        for col in self.SPEC:
            if col.kind == "levels":  # read lazily: a flat form is checked without the objects
                checks.append(levels_check(col, self._getter(col.name), self.flat_form(col.name)))
                continue
            values = getattr(self, col.name)
            if col.kind == "ts":
                checks.extend(ts_checks(col.name, values, self.naive_ts))
            elif col.kind == "text":
                checks.extend(text_checks(col, values))
            else:
                checks.append(float_check(col, values))
        return checks

    def _getter(self, name: str) -> Callable[[], NDArray[Any]]:
        return lambda: getattr(self, name)

    def flat_form(self, name: str) -> FlatLevels | None:
        """The flat form of levels column ``name``, when the batch carries one (order books)."""
        return None

    def _unbuilt(self, name: str) -> bool:
        """Whether column ``name`` is still to be made from another form (order books' levels)."""
        return False

    @property
    def deferred(self) -> bool:
        """Whether part of the batch is still to be made from its input, part by part
        (``OrderbookBatch.from_columns_deferred``); ``part`` then makes only the rows
        asked for."""
        return False

    def part(self, start: int, stop: int) -> Self:
        """Rows ``start:stop`` as a batch of their own (a copy, ``take``). Raises
        ``IndexError`` for a range outside the batch."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows {start}:{stop} are not within the batch's {len(self)}")
        return self.take(np.arange(start, stop))

    # -- selection and identity ---------------------------------------------------

    def select(self, mask: NDArray[np.bool_]) -> Self:
        """Return a new batch of the rows where ``mask`` is True (order kept).

        Raises ``BatchValidationError`` (a ``ValueError``) unless ``mask`` is a
        bool array of the batch's length. Costs one fancy-indexing copy per column.
        """
        keep = np.asarray(mask)
        if keep.dtype != np.bool_ or keep.shape != (len(self),):
            reason = (
                f"mask must be a bool array of shape ({len(self)},), "
                f"not {keep.dtype} of shape {keep.shape}"
            )
            raise BatchValidationError(self.TABLE, [RowProblem(None, "*", reason)])
        return self.take(keep)

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> Self:
        """A new batch of ``rows`` (a bool mask of the batch's length, or row indices) of every
        column, unchecked (``select`` checks its mask). Costs one copy per column."""
        picked = {name: getattr(self, name)[rows] for name in self.COLUMNS}
        naive = None if self.naive_ts is None else self.naive_ts[rows]
        return type(self)(**picked, naive_ts=naive)

    def in_index_order(self) -> Self:
        """Return the rows ordered by (token_id, ts): the order of the tables' indexes.

        Inserting in index order turns the (token_id, ts DESC) index's
        random page visits into a sequential pass: the server loads such a
        batch about 1.8x faster (see benchmarks/README.md). token_id is ordered
        by code point, which is the byte order of the ``"C"`` collation the
        schema uses. Returns ``self`` when already ordered. Costs a dict
        lookup per row plus an integer sort (about 0.3 s for a million rows).
        """
        n = len(self)
        if n < 2:
            return self
        tokens: list[str] = self.token_id.tolist()
        codes: dict[str, int] = {}
        per_row = np.fromiter(
            (codes.setdefault(t, len(codes)) for t in tokens), dtype=np.int64, count=n
        )
        distinct = np.array(list(codes), dtype=object)
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
        order = np.lexsort((self.ts.view(np.int64), rank[per_row]))
        if np.array_equal(order, np.arange(n)):
            return self
        return self.take(order)

    def content_digest(self) -> str:
        """A hex XXH3-128 digest of the table, column names and every value.

        Equal content gives the same digest in every process and on every
        platform; changing any value (or a timestamp's naive flag) changes it.
        NaN payloads are canonicalised. Numeric and timestamp columns are hashed
        as their little-endian array bytes (no copy), text columns as their
        lengths plus their UTF-8 text (joined in blocks), levels as their
        counts and float64 numbers (or, when malformed, one ``repr`` per
        row); levels that carry their texts (given as strings) as their
        counts and texts instead: the texts are what the Writer stores, so
        batches whose levels differ only in digits a double cannot hold, or
        in trailing zeros, are different batches (hashing their floats would
        skip the second as already written, a silent loss). The same input
        always gets the same digest, whichever path parsed it. XXH3 is not
        cryptographic but hashes at memory speed,
        and 128 bits make an accidental collision (which would skip a batch
        as "already written") negligible; batch ids come from trusted
        collectors. About 0.15 s for a million prices. Raises nothing.
        """
        return batch_digest(self)


BatchT = TypeVar("BatchT", bound=ColumnBatch)


def _transposed(
    rows: Sequence[Any], record_type: type[BaseModel], columns: tuple[str, ...]
) -> list[list[Any]] | None:
    """The columns of rows that are all full-length tuples or all records, one C-level pass
    per column (~4x the row loop); None for anything else (mixed, short, empty)."""
    kinds = set(map(type, rows))
    if kinds == {tuple} and set(map(len, rows)) == {len(columns)}:
        return [list(map(itemgetter(k), rows)) for k in range(len(columns))]
    if kinds == {record_type}:
        return [list(map(attrgetter(name), rows)) for name in columns]
    return None


def as_batch(
    batch_type: type[BatchT], data: BatchT | Mapping[str, Any] | Sequence[Any] | FrameLike
) -> BatchT:
    """Return ``data`` as a ``batch_type``: as is, from a column mapping, or from rows.

    A pandas or polars DataFrame or a pyarrow Table goes through
    ``ColumnBatch.from_frame``. Raises ``BatchValidationError``
    for a batch of another table, for anything that is not a mapping, a
    sequence or a frame, and for structural problems. Costs nothing for an
    instance, else a construction.
    """
    if isinstance(data, batch_type):
        return data
    if is_frame(data):  # pandas/polars DataFrame, pyarrow Table
        return batch_type.from_frame(data)
    if isinstance(data, ColumnBatch):
        reason = f"expected a {batch_type.__name__}, got a {type(data).__name__}"
    elif isinstance(data, Mapping):
        return batch_type.from_columns(data)
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return batch_type.from_rows(data)
    else:
        reason = (
            f"expected a batch, a mapping of columns or a sequence of rows, got {type_name(data)}"
        )
    raise BatchValidationError(batch_type.TABLE, [RowProblem(None, "*", reason)])


BatchClassT = TypeVar("BatchClassT", bound=type[ColumnBatch])


@dataclass_transform(frozen_default=True, field_specifiers=(column, field))
def table_batch(cls: BatchClassT) -> BatchClassT:
    """Make ``cls`` a frozen, slotted batch dataclass of its table.

    Its :func:`~pmstore.batches._spec.column` fields give ``SPEC``, ``COLUMNS``
    and ``REQUIRED``. Costs one dataclass creation, at import.
    """
    made = cast(BatchClassT, dataclass(frozen=True, slots=True, eq=False)(cls))
    made.SPEC = spec_of(made)
    made.COLUMNS = tuple(c.name for c in made.SPEC)
    made.REQUIRED = tuple(c.name for c in made.SPEC if c.required)
    return made
