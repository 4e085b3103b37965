"""The three COPY-written tables' batches: ``PriceBatch``, ``OrderbookBatch`` and
``TradeBatch`` (with ``derive_trade_id``, the id of a fill given without one).
"""

from __future__ import annotations

import hashlib
from dataclasses import field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from pmstore.batches._column_batch import ColumnBatch, table_batch
from pmstore.batches._convert import parse_levels
from pmstore.batches._levels import BookLevels, FlatLevels, flat_sides, side_lists, top_of_book
from pmstore.batches._spec import column
from pmstore.errors import BatchValidationError, RowProblem
from pmstore.models import OrderbookSnapshot, PriceSnapshot, TradeRecord

__all__ = ["OrderbookBatch", "PriceBatch", "TradeBatch", "derive_trade_id"]


@table_batch
class PriceBatch(ColumnBatch):
    """Rows of ``price_snapshots``: a token's price (and 24h volume) at an instant."""

    TABLE: ClassVar[str] = "price_snapshots"
    RECORD: ClassVar[type[BaseModel]] = PriceSnapshot

    ts: NDArray[np.datetime64] = column("ts")
    token_id: NDArray[np.object_] = column("text")
    price: NDArray[np.float64] = column("float", low=0.0, high=1.0)
    volume_24h: NDArray[np.float64] = column("float", required=False, nullable=True, low=0.0)
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)


@table_batch
class OrderbookBatch(ColumnBatch):
    """Rows of ``orderbook_snapshots``: a token's book at an instant.

    ``from_columns`` accepts levels as pairs of numbers or numeric strings
    (``[("0.48", "1234.5"), [0.47, 10]]``) in any order; they are stored as
    ``(float, float)`` tuples best-first. When a row's spread and midpoint are
    both NULL they are computed from the best bid (highest) and best ask
    (lowest): ``spread = ask - bid``, ``midpoint = (bid + ask) / 2``; both stay
    NULL for an empty or one-sided book. A malformed side (e.g. a dict level)
    is kept as given and reported by ``problems()``.

    ``levels`` (not a column) may carry the same levels in flat form
    (:class:`~pmstore.batches._levels.BookLevels`, best-first, exactly the
    values of ``bids``/``asks``): the ingest path builds batches with it, and
    then checks, digest, size estimates and the COPY encoding read those
    arrays instead of the per-level tuples. Row selections keep it.
    """

    TABLE: ClassVar[str] = "orderbook_snapshots"
    RECORD: ClassVar[type[BaseModel]] = OrderbookSnapshot

    ts: NDArray[np.datetime64] = column("ts")
    token_id: NDArray[np.object_] = column("text")
    bids: NDArray[np.object_] = column("levels", descending=True)
    asks: NDArray[np.object_] = column("levels")
    spread: NDArray[np.float64] = column("float", required=False, nullable=True)
    midpoint: NDArray[np.float64] = column(
        "float", required=False, nullable=True, low=0.0, high=1.0
    )
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)
    levels: BookLevels | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """The base checks, and that ``levels`` (if given) has a count per row of each side."""
        ColumnBatch.__post_init__(self)
        if self.levels is None:
            return
        problems = [
            RowProblem(None, name, "levels must have one count per row and a value per level")
            for name in ("bids", "asks")
            if not _consistent(self.levels.side(name), len(self))
        ]
        if problems:
            raise BatchValidationError(self.TABLE, problems)
        self.levels.bids.freeze()
        self.levels.asks.freeze()

    @classmethod
    def from_flat(
        cls,
        ts: NDArray[np.datetime64],
        token_id: NDArray[np.object_],
        levels: BookLevels,
        spread: NDArray[np.float64],
        midpoint: NDArray[np.float64],
    ) -> OrderbookBatch:
        """A batch of books whose levels are given only in flat form, best-first.

        ``bids``/``asks`` are made from ``levels`` on first read (one tuple per
        level); checks, digest and COPY encoding never need them. Raises
        ``BatchValidationError`` like the constructor. The arrays are owned.
        """
        return cls(ts, token_id, _UNBUILT, _UNBUILT, spread, midpoint, levels=levels)

    def flat_form(self, name: str) -> FlatLevels | None:
        return None if self.levels is None else self.levels.side(name)

    def _unbuilt(self, name: str) -> bool:
        return name in _SIDES and _SIDES[name].stored(self) is _UNBUILT

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> OrderbookBatch:
        picked: dict[str, Any] = {
            name: _UNBUILT if self._unbuilt(name) else getattr(self, name)[rows]
            for name in self.COLUMNS
        }
        naive = None if self.naive_ts is None else self.naive_ts[rows]
        levels = None if self.levels is None else self.levels.take(rows)
        return OrderbookBatch(**picked, naive_ts=naive, levels=levels)

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> dict[str, Any]:
        """Parse both sides (and derive spread and midpoint where neither is given).

        When every side of both columns has a common shape the batch keeps
        them in flat form only (``levels``; the sides' tuples are made on
        first read, as for ``from_flat``), else each side is parsed row by
        row into tuples, malformed ones kept as given for ``problems()``."""
        n = len(columns["ts"])
        best = {"bids": np.full(n, np.nan), "asks": np.full(n, np.nan)}
        flats: dict[str, FlatLevels] = {}
        for side, descending in (("bids", True), ("asks", False)):
            bulk = flat_sides(columns[side].tolist(), descending)
            if bulk is not None:  # the common shapes, parsed for the whole column at once
                flats[side], best[side] = bulk
                continue
            normalised = np.empty(n, dtype=object)
            top = best[side]
            for i, levels in enumerate(columns[side].tolist()):
                parsed = parse_levels(levels, descending)
                if isinstance(parsed, str):  # malformed: kept as given for problems()
                    normalised[i] = levels
                else:
                    normalised[i] = parsed
                    if parsed:
                        top[i] = parsed[0][0]
            columns[side] = normalised
        columns["spread"], columns["midpoint"] = top_of_book(
            columns["spread"], columns["midpoint"], best["bids"], best["asks"]
        )
        if len(flats) == 2:
            columns["bids"] = columns["asks"] = _UNBUILT
            return {"levels": BookLevels(flats["bids"], flats["asks"])}
        for side, flat in flats.items():
            normalised = np.empty(n, dtype=object)
            normalised[:] = side_lists(flat)
            columns[side] = normalised
        return {}


_UNBUILT: NDArray[np.object_] = np.empty(0, dtype=object)
"""Marks a side of an ``OrderbookBatch.from_flat`` batch not yet made from its levels."""


class _LazySide:
    """The ``bids``/``asks`` attribute of OrderbookBatch: its slot, filled on first read
    from the batch's flat levels when the batch was made by ``from_flat``."""

    def __init__(self, slot: Any, name: str) -> None:
        self._slot, self._name = slot, name

    def stored(self, batch: OrderbookBatch) -> Any:
        return self._slot.__get__(batch, OrderbookBatch)

    def __get__(self, batch: OrderbookBatch | None, owner: type | None = None) -> Any:
        if batch is None:
            return self
        value = self._slot.__get__(batch, owner)
        if value is _UNBUILT and batch.levels is not None:
            sides = side_lists(batch.levels.side(self._name))
            value = np.fromiter(sides, dtype=object, count=len(sides))
            value.flags.writeable = False
            self._slot.__set__(batch, value)  # two threads may both make it: the same value
        return value

    def __set__(self, batch: OrderbookBatch, value: Any) -> None:
        self._slot.__set__(batch, value)


_SIDES: dict[str, _LazySide] = {}
for _name in ("bids", "asks"):
    _SIDES[_name] = _LazySide(OrderbookBatch.__dict__[_name], _name)
    setattr(OrderbookBatch, _name, _SIDES[_name])


def _consistent(flat: FlatLevels, rows: int) -> bool:
    arrays = (flat.counts, flat.prices, flat.sizes)
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
        return False
    return (
        flat.counts.dtype == np.int64
        and flat.prices.dtype == flat.sizes.dtype == np.float64
        and len(flat.counts) == rows
        and len(flat.prices) == len(flat.sizes) == int(flat.counts.sum())
        and not (flat.counts < 0).any()
    )


@table_batch
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

    ts: NDArray[np.datetime64] = column("ts")
    token_id: NDArray[np.object_] = column("text")
    side: NDArray[np.object_] = column("text", choices=("BUY", "SELL"))
    price: NDArray[np.float64] = column("float", low=0.0, high=1.0)
    size: NDArray[np.float64] = column("float", low=0.0)
    trade_id: NDArray[np.object_] = column("text", required=False, nullable=True)
    naive_ts: NDArray[np.bool_] | None = field(default=None, repr=False)

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> dict[str, Any]:
        ids = columns["trade_id"]
        absent = np.fromiter((v is None for v in ids), dtype=bool, count=len(ids))
        rows = np.flatnonzero(absent)
        if not rows.size:
            return {}
        derived = map(
            derive_trade_id,
            columns["token_id"][rows].tolist(),
            columns["ts"][rows].view(np.int64).tolist(),
            columns["side"][rows].tolist(),
            columns["price"][rows].tolist(),
            columns["size"][rows].tolist(),
        )
        ids[rows] = np.fromiter(derived, dtype=object, count=rows.size)
        return {}


def derive_trade_id(token_id: str, ts_us: int, side: str, price: float, size: float) -> str:
    """The trade id ``TradeBatch`` gives a fill that has none (see its docstring).

    ``ts_us`` is microseconds since 1970-01-01 UTC; ``price`` and ``size`` must
    be Python floats (their ``repr`` is hashed). Costs one SHA-1 of ~100 bytes.
    """
    key = f"{token_id}|{ts_us}|{side}|{price!r}|{size!r}"
    return "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
