"""Typed columnar batches for the three COPY-written tables, with vectorized validation.

A batch holds one numpy array per column, all of the same length:

- ``PriceBatch``     -> ``price_snapshots``     (ts, token_id, price, volume_24h)
- ``OrderbookBatch`` -> ``orderbook_snapshots`` (ts, token_id, bids, asks, spread, midpoint)
- ``TradeBatch``     -> ``trades``              (ts, token_id, side, price, size, trade_id)

Column representations (the class invariants, checked on construction):

- ``ts``: ``datetime64[us]``, UTC. ``naive_ts`` (not a column) marks rows whose
  timestamp was given as a naive ``datetime``; they are taken as UTC and reported
  by ``problems()``.
- text columns (``token_id``, ``side``, ``trade_id``): object arrays of ``str``.
- numeric columns: ``float64``; NaN is NULL in the nullable ones (``volume_24h``,
  ``spread``, ``midpoint``).
- ``bids``/``asks``: object arrays whose items are ``list[tuple[float, float]]``
  of (price, size) levels, best-first (bids by descending price, asks ascending).

Two kinds of problems:

- structural ones (a column missing, unknown, of the wrong type or length; a row
  tuple of the wrong length) make ``from_columns``/``from_rows`` raise
  ``BatchValidationError`` at once;
- value problems (a price outside [0, 1], an empty token, a naive timestamp, a
  malformed order-book level, ...) are found by ``problems()``, which works on
  whole columns with numpy; ``validated()`` raises for them, ``select()`` lets a
  caller keep only the good rows instead.

A batch owns its arrays and makes them read-only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar

import numpy as np
import xxhash
from numpy.typing import NDArray
from pydantic import BaseModel

from pmstore.errors import BatchValidationError, RowProblem
from pmstore.models import OrderbookSnapshot, PriceSnapshot, TradeRecord

__all__ = [
    "TS_DTYPE",
    "ColumnBatch",
    "Level",
    "OrderbookBatch",
    "PriceBatch",
    "TradeBatch",
    "as_batch",
    "derive_trade_id",
]

Level = tuple[float, float]
"""One order-book level: (price, size)."""

TS_DTYPE = np.dtype("datetime64[us]")
"""The dtype of every batch's ``ts`` column."""

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_NAT = np.iinfo(np.int64).min  # the int64 value of NaT
_DIGEST_BLOCK = 1 << 14  # text items joined per digest update
_FLOAT_DTYPE = np.dtype(np.float64)
_OBJECT_DTYPE = np.dtype(object)
_Kind = Literal["ts", "text", "float", "levels"]
_DTYPE_OF_KIND: dict[_Kind, np.dtype[Any]] = {
    "ts": TS_DTYPE,
    "text": _OBJECT_DTYPE,
    "float": _FLOAT_DTYPE,
    "levels": _OBJECT_DTYPE,
}


@dataclass(frozen=True, slots=True)
class _Column:
    """How one column is stored and checked."""

    name: str
    kind: _Kind
    required: bool = True
    nullable: bool = False  # float: NaN is NULL; text: None is filled in by the batch
    low: float | None = None  # float: smallest valid value (inclusive)
    high: float | None = None  # float: largest valid value (inclusive)
    choices: tuple[str, ...] | None = None  # text: the only valid values
    descending: bool = False  # levels: sorted by descending price (bids)


class _ColumnError(Exception):
    """A column cannot be converted; the message says why."""


@dataclass(frozen=True, slots=True)
class _Check:
    """The rows of one column that break one rule, and how to word each problem."""

    column: str
    bad: NDArray[np.bool_]
    reason: Callable[[int], str]


class ColumnBatch:
    """Base class of the typed batches: the shared constructors, checks and digest.

    Subclasses are frozen, slotted dataclasses whose fields are the table's
    columns (in COPY order) followed by ``naive_ts``.
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
    _SPEC: ClassVar[tuple[_Column, ...]]

    if TYPE_CHECKING:
        ts: NDArray[np.datetime64]
        token_id: NDArray[np.object_]
        naive_ts: NDArray[np.bool_] | None

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_SPEC" in cls.__dict__:
            cls.COLUMNS = tuple(c.name for c in cls._SPEC)
            cls.REQUIRED = tuple(c.name for c in cls._SPEC if c.required)

    def __post_init__(self) -> None:
        """Check the arrays' types and lengths, then make them read-only.

        Raises ``BatchValidationError`` (``row=None``) naming each bad column.
        """
        problems: list[RowProblem] = []
        arrays: list[tuple[str, NDArray[Any]]] = []
        for col in self._SPEC:
            value = getattr(self, col.name)
            expected = _DTYPE_OF_KIND[col.kind]
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
        problems.extend(_length_problems(arrays))
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
        if not isinstance(columns, Mapping):
            raise BatchValidationError(
                cls.TABLE,
                [RowProblem(None, "*", f"expected a mapping of columns, got {_type(columns)}")],
            )
        problems = [RowProblem(None, name, "is missing") for name in cls.REQUIRED]
        problems = [p for p in problems if p.column not in columns]
        problems.extend(
            RowProblem(None, str(name), f"is not a column of {cls.TABLE} (known: {cls.COLUMNS})")
            for name in columns
            if name not in cls.COLUMNS
        )
        converted: dict[str, NDArray[Any]] = {}
        naive: NDArray[np.bool_] | None = None
        for col in cls._SPEC:
            if col.name not in columns:
                continue
            try:
                if col.kind == "ts":
                    converted[col.name], naive = _convert_ts(columns[col.name])
                else:
                    converted[col.name] = _CONVERTERS[col.kind](columns[col.name])
            except _ColumnError as exc:
                problems.append(RowProblem(None, col.name, str(exc)))
        problems.extend(_length_problems(list(converted.items())))
        if problems:
            raise BatchValidationError(cls.TABLE, problems)
        n = len(next(iter(converted.values())))
        for col in cls._SPEC:
            if col.name not in converted:
                converted[col.name] = (
                    np.full(n, np.nan) if col.kind == "float" else np.full(n, None, dtype=object)
                )
        cls._complete(converted)
        return cls(**converted, naive_ts=naive)

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
                [RowProblem(None, "*", f"expected a sequence of rows, got {_type(rows)}")],
            )
        columns = cls.COLUMNS
        shortest = max(i for i, col in enumerate(cls._SPEC) if col.required) + 1
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
                        i, "*", f"expected a {record_type.__name__} or a tuple, got {_type(row)}"
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
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> None:
        """Normalise/derive columns in place before the batch is built (per table)."""

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
        candidates: list[tuple[int, int, _Check]] = []
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

    def _checks(self) -> list[_Check]:
        checks: list[_Check] = []
        for col in self._SPEC:
            values = getattr(self, col.name)
            if col.kind == "ts":
                checks.extend(_ts_checks(col.name, values, self.naive_ts))
            elif col.kind == "text":
                checks.extend(_text_checks(col, values))
            elif col.kind == "float":
                checks.append(_float_check(col, values))
            else:
                checks.append(_levels_check(col, values))
        return checks

    # -- selection and identity ---------------------------------------------------

    def select(self, mask: NDArray[np.bool_]) -> Self:
        """Return a new batch of the rows where ``mask`` is True (order kept).

        Raises ``ValueError`` unless ``mask`` is a bool array of the batch's
        length. Costs one fancy-indexing copy per column.
        """
        keep = np.asarray(mask)
        if keep.dtype != np.bool_ or keep.shape != (len(self),):
            raise ValueError(
                f"mask must be a bool array of shape ({len(self)},), "
                f"not {keep.dtype} of shape {keep.shape}"
            )
        return self._take(keep)

    def _take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> Self:
        """A new batch of ``rows`` (a mask or indices) of every column."""
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
        return self._take(order)

    def content_digest(self) -> str:
        """A hex XXH3-128 digest of the table, column names and every value.

        Equal content gives the same digest in every process and on every
        platform; changing any value (or a timestamp's naive flag) changes it.
        NaN payloads are canonicalised. Numeric and timestamp columns are hashed
        as their little-endian array bytes (no copy), text columns as their
        lengths plus their UTF-8 text (joined in blocks), levels as their
        counts and float64 numbers (or, when malformed, one ``repr`` per
        row). XXH3 is not cryptographic but hashes at memory speed,
        and 128 bits make an accidental collision (which would skip a batch
        as "already written") negligible; batch ids come from trusted
        collectors. About 0.15 s for a million prices. Raises nothing.
        """
        digest = xxhash.xxh3_128()
        digest.update(f"{self.TABLE}\x00{len(self)}".encode())
        for col in self._SPEC:
            values = getattr(self, col.name)
            digest.update(f"\x00{col.name}\x00".encode())
            if col.kind == "ts":
                digest.update(np.ascontiguousarray(values.view(np.int64), dtype="<i8").data)
            elif col.kind == "float":
                nan = np.isnan(values)
                canonical = np.where(nan, np.nan, values) if nan.any() else values
                digest.update(np.ascontiguousarray(canonical, dtype="<f8").data)
            elif col.kind == "levels" and (numbers := _level_numbers(values)) is not None:
                digest.update(b"\x00pairs\x00")
                for part in numbers:
                    digest.update(part.data)
            else:
                texts = values.tolist() if col.kind == "text" else list(map(repr, values))
                if not _all_str(texts):
                    texts = [
                        v if type(v) is str else f"\x00{type(v).__name__}:{v!r}" for v in texts
                    ]
                lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
                digest.update(np.ascontiguousarray(lengths, dtype="<i8").data)
                for start in range(0, len(texts), _DIGEST_BLOCK):  # small blocks: no big copies
                    block = "".join(texts[start : start + _DIGEST_BLOCK])
                    digest.update(block.encode("utf-8", "surrogatepass"))
        if self.naive_ts is not None and self.naive_ts.any():
            digest.update(b"\x00naive_ts\x00")
            digest.update(np.ascontiguousarray(np.flatnonzero(self.naive_ts), dtype="<i8").data)
        return digest.hexdigest()


def _level_numbers(
    values: NDArray[np.object_],
) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """Levels per row and every (price, size) as float64, for hashing; None unless every
    row is a list of 2-item pairs of real numbers (then the caller hashes reprs).
    About 0.15 s for 50,000 books of 36 levels, against 1.3 s for their reprs."""
    sides = values.tolist()
    try:
        counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
        if not all(type(side) is list and all(len(lv) == 2 for lv in side) for side in sides):
            return None
        flat = np.fromiter(
            chain.from_iterable(chain.from_iterable(sides)),
            dtype=np.float64,
            count=int(counts.sum()) * 2,
        )
    except (TypeError, ValueError):
        return None
    nan = np.isnan(flat)
    canonical = np.where(nan, np.nan, flat) if nan.any() else flat
    return (
        np.ascontiguousarray(counts, dtype="<i8"),
        np.ascontiguousarray(canonical, dtype="<f8"),
    )


# -- the three tables -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class PriceBatch(ColumnBatch):
    """Rows of ``price_snapshots``: a token's price (and 24h volume) at an instant."""

    TABLE: ClassVar[str] = "price_snapshots"
    RECORD: ClassVar[type[BaseModel]] = PriceSnapshot
    _SPEC: ClassVar[tuple[_Column, ...]] = (
        _Column("ts", "ts"),
        _Column("token_id", "text"),
        _Column("price", "float", low=0.0, high=1.0),
        _Column("volume_24h", "float", required=False, nullable=True, low=0.0),
    )

    ts: NDArray[np.datetime64]
    token_id: NDArray[np.object_]
    price: NDArray[np.float64]
    volume_24h: NDArray[np.float64]
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class OrderbookBatch(ColumnBatch):
    """Rows of ``orderbook_snapshots``: a token's book at an instant.

    ``from_columns`` accepts levels as pairs of numbers or numeric strings
    (``[("0.48", "1234.5"), [0.47, 10]]``) in any order; they are stored as
    ``(float, float)`` tuples best-first. When a row's spread and midpoint are
    both NULL they are computed from the best bid (highest) and best ask
    (lowest): ``spread = ask - bid``, ``midpoint = (bid + ask) / 2``; both stay
    NULL for an empty or one-sided book. A malformed side (e.g. a dict level)
    is kept as given and reported by ``problems()``.
    """

    TABLE: ClassVar[str] = "orderbook_snapshots"
    RECORD: ClassVar[type[BaseModel]] = OrderbookSnapshot
    _SPEC: ClassVar[tuple[_Column, ...]] = (
        _Column("ts", "ts"),
        _Column("token_id", "text"),
        _Column("bids", "levels", descending=True),
        _Column("asks", "levels"),
        _Column("spread", "float", required=False, nullable=True),
        _Column("midpoint", "float", required=False, nullable=True, low=0.0, high=1.0),
    )

    ts: NDArray[np.datetime64]
    token_id: NDArray[np.object_]
    bids: NDArray[np.object_]
    asks: NDArray[np.object_]
    spread: NDArray[np.float64]
    midpoint: NDArray[np.float64]
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> None:
        n = len(columns["ts"])
        best = {"bids": np.full(n, np.nan), "asks": np.full(n, np.nan)}
        for side, descending in (("bids", True), ("asks", False)):
            raw = columns[side]
            normalised = np.empty(n, dtype=object)
            top = best[side]
            for i, levels in enumerate(raw.tolist()):
                parsed = _parse_levels(levels, descending)
                if isinstance(parsed, str):  # malformed: kept as given for problems()
                    normalised[i] = levels
                else:
                    normalised[i] = parsed
                    if parsed:
                        top[i] = parsed[0][0]
            columns[side] = normalised
        spread, midpoint = columns["spread"], columns["midpoint"]
        derive = np.isnan(spread) & np.isnan(midpoint)
        if derive.any():
            bid, ask = best["bids"], best["asks"]
            columns["spread"] = np.where(derive, ask - bid, spread)
            columns["midpoint"] = np.where(derive, (bid + ask) / 2.0, midpoint)


@dataclass(frozen=True, slots=True, eq=False)
class TradeBatch(ColumnBatch):
    """Rows of ``trades``: one fill each.

    ``trade_id`` is always filled: where it is absent (column left out, or an
    item is None) it is derived deterministically by ``derive_trade_id``::

        "sha1:" + sha1(f"{token_id}|{ts_us}|{side}|{price!r}|{size!r}").hexdigest()

    with ``ts_us`` the integer microseconds since 1970-01-01 UTC and ``price``
    and ``size`` Python floats. The same fill always gets the same id in every
    process, so re-writing a batch is idempotent; but two identical fills (same
    token, microsecond, side, price and size) collapse into one. Callers that
    know a real trade id or a (transaction hash, fill index) key should pass it.
    """

    TABLE: ClassVar[str] = "trades"
    RECORD: ClassVar[type[BaseModel]] = TradeRecord
    _SPEC: ClassVar[tuple[_Column, ...]] = (
        _Column("ts", "ts"),
        _Column("token_id", "text"),
        _Column("side", "text", choices=("BUY", "SELL")),
        _Column("price", "float", low=0.0, high=1.0),
        _Column("size", "float", low=0.0),
        _Column("trade_id", "text", required=False, nullable=True),
    )

    ts: NDArray[np.datetime64]
    token_id: NDArray[np.object_]
    side: NDArray[np.object_]
    price: NDArray[np.float64]
    size: NDArray[np.float64]
    trade_id: NDArray[np.object_]
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> None:
        ids = columns["trade_id"]
        absent = np.fromiter((v is None for v in ids), dtype=bool, count=len(ids))
        rows = np.flatnonzero(absent)
        if not rows.size:
            return
        derived = map(
            derive_trade_id,
            columns["token_id"][rows].tolist(),
            columns["ts"][rows].view(np.int64).tolist(),
            columns["side"][rows].tolist(),
            columns["price"][rows].tolist(),
            columns["size"][rows].tolist(),
        )
        ids[rows] = np.fromiter(derived, dtype=object, count=rows.size)


def derive_trade_id(token_id: str, ts_us: int, side: str, price: float, size: float) -> str:
    """The trade id ``TradeBatch`` gives a fill that has none (see its docstring).

    ``ts_us`` is microseconds since 1970-01-01 UTC; ``price`` and ``size`` must
    be Python floats (their ``repr`` is hashed). Costs one SHA-1 of ~100 bytes.
    """
    key = f"{token_id}|{ts_us}|{side}|{price!r}|{size!r}"
    return "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


BatchT = TypeVar("BatchT", bound=ColumnBatch)


def as_batch(batch_type: type[BatchT], data: BatchT | Mapping[str, Any] | Sequence[Any]) -> BatchT:
    """Return ``data`` as a ``batch_type``: as is, from a column mapping, or from rows.

    Raises ``BatchValidationError`` for a batch of another table, for anything
    that is not a mapping or a sequence, and for ``from_columns``/``from_rows``
    structural problems. Costs nothing for an instance, else a construction.
    """
    if isinstance(data, batch_type):
        return data
    if isinstance(data, ColumnBatch):
        reason = f"expected a {batch_type.__name__}, got a {type(data).__name__}"
    elif isinstance(data, Mapping):
        return batch_type.from_columns(data)
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return batch_type.from_rows(data)
    else:
        reason = f"expected a batch, a mapping of columns or a sequence of rows, got {_type(data)}"
    raise BatchValidationError(batch_type.TABLE, [RowProblem(None, "*", reason)])


# -- column conversion (structural checks) ------------------------------------------------


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


_CONVERTERS: dict[_Kind, Callable[[Any], NDArray[Any]]] = {
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


# -- order-book levels --------------------------------------------------------------------


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


def _level_problem(levels: object, descending: bool) -> str | None:
    """Why a stored side of a book is invalid, or None."""
    strict = type(levels) is list and all(
        type(level) is tuple
        and len(level) == 2
        and type(level[0]) is float
        and type(level[1]) is float
        for level in levels
    )
    if not strict:
        parsed = _parse_levels(levels, descending)
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


# -- value checks -------------------------------------------------------------------------


def _ts_checks(
    name: str, ts: NDArray[np.datetime64], naive: NDArray[np.bool_] | None
) -> list[_Check]:
    checks = [_Check(name, np.isnat(ts), lambda _row: "timestamp is missing (None/NaT)")]
    if naive is not None:
        checks.append(
            _Check(name, naive, lambda _row: "timestamp is naive (no timezone); give aware ones")
        )
    return checks


def _all_str(values: Iterable[object]) -> bool:
    return set(map(type, values)) <= {str}


def _text_checks(col: _Column, values: NDArray[np.object_]) -> list[_Check]:
    items: list[Any] = values.tolist()
    n = len(items)
    if _all_str(items):
        bad = np.zeros(n, dtype=bool)
        if "" in items:
            bad |= values == ""
        joined = "".join(items)
        if "\x00" in joined or not joined.isascii():
            bad |= np.fromiter(map(_bad_text, items), dtype=bool, count=n)
    else:
        bad = np.fromiter(
            (not isinstance(v, str) or not v or _bad_text(v) for v in items), dtype=bool, count=n
        )

    def reason(row: int) -> str:
        value = items[row]
        if value is None:
            return "is missing (None)"
        if not isinstance(value, str):
            return f"must be text, got {_type(value)} {value!r:.40}"
        if not value:
            return "is empty"
        if "\x00" in value:
            return "contains a NUL character"
        return "is not valid Unicode (lone surrogate)"

    checks = [_Check(col.name, bad, reason)]
    if col.choices is not None:
        choices = col.choices
        wrong = ~bad & ~np.isin(values, np.array(choices, dtype=object))
        checks.append(
            _Check(col.name, wrong, lambda row: f"{items[row]!r:.40} is not one of {choices}")
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


def _float_check(col: _Column, values: NDArray[np.float64]) -> _Check:
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

    return _Check(col.name, ~ok, reason)


def _levels_check(col: _Column, values: NDArray[np.object_]) -> _Check:
    reasons = [_level_problem(levels, col.descending) for levels in values.tolist()]
    bad = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    return _Check(col.name, bad, lambda row: str(reasons[row]))
