"""The three COPY-written tables' batches: ``PriceBatch``, ``OrderbookBatch`` and
``TradeBatch`` (with ``derive_trade_id``, the id of a fill given without one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from pmstore.batches._blocks import block_map
from pmstore.batches._column_batch import ColumnBatch, table_batch
from pmstore.batches._convert import parse_levels
from pmstore.batches._decimal_levels import (
    DecimalLevels,
    concat_levels,
    decimal_levels,
    decimal_sides,
)
from pmstore.batches._levels import (
    BookLevels,
    FlatLevels,
    best_prices,
    flat_sides,
    side_lists,
    top_of_book,
)
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

    ``from_columns`` accepts levels as ``{"price": ..., "size": ...}`` dicts
    or ``(price, size)`` pairs, of numbers or numeric strings, in any order;
    ``bids``/``asks`` hold them as ``(float, float)`` tuples best-first. When a
    row's spread and midpoint are both NULL they are computed from the best bid
    (highest) and best ask (lowest): ``spread = ask - bid``, ``midpoint = (bid +
    ask) / 2``; both stay NULL for an empty or one-sided book. A malformed side
    (e.g. a level without a size) is kept as given and reported by
    ``problems()``.

    Levels given as strings (Polymarket's ``"0.48"``) keep their texts as well
    (``pmstore.batches._decimal_levels``): the Writer stores those texts
    unchanged in the JSONB sides, every digit kept; levels given as numbers
    are stored as their shortest round-trip decimals. A batch with a malformed
    side keeps its well-formed sides in flat form too (``salvaged``, texts
    included): a selection of rows without a malformed side (``on_invalid="skip"``)
    is the batch those rows alone would make, and is stored with the same digits.

    ``levels`` (not a column) may carry the same levels in flat form
    (:class:`~pmstore.batches._levels.BookLevels`, best-first, exactly the
    values of ``bids``/``asks``, with the texts when there are any): batches
    built from columns and the ingest path carry it, and then checks, digest,
    size estimates and the COPY encoding read those arrays instead of the
    per-level tuples. Row selections keep it.

    ``from_columns_deferred`` makes a batch that parses its levels part by part
    when first needed (``part``): the Writer parses each chunk's levels while
    the previous chunk is being sent.
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
    pending: PendingLevels | None = field(default=None, repr=False)
    salvaged: SalvagedLevels | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """The base checks, and that ``levels`` (if given) has a count per row of each side."""
        ColumnBatch.__post_init__(self)
        if self.pending is not None:
            if len(self.pending) != len(self):
                problem = RowProblem(None, "*", "pending levels must have one side per row")
                raise BatchValidationError(self.TABLE, [problem])
            return
        if self.salvaged is not None:
            salvaged = self.salvaged
            if len(salvaged.malformed) != len(self) or not all(
                _consistent(salvaged.levels.side(name), len(self)) for name in ("bids", "asks")
            ):
                problem = RowProblem(None, "*", "salvaged levels must have one count per row")
                raise BatchValidationError(self.TABLE, [problem])
            salvaged.freeze()
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

    @classmethod
    def from_columns_deferred(cls, columns: Mapping[str, Any]) -> OrderbookBatch:
        """``from_columns(columns)``, its levels (and so spread and midpoint) parsed later.

        The columns are converted and structurally checked now (raising like
        ``from_columns``); the sides are parsed by ``part`` for the rows asked
        for (kept, once each), or all at once on the first read of ``bids``,
        ``asks``, ``spread``, ``midpoint`` or ``levels`` (any check, digest,
        selection): from the parts made so far when they cover the batch,
        which is what the Writer's stream does, chunk by chunk in its worker
        thread. The result is exactly ``from_columns``'. Costs the conversion
        of ``ts`` and ``token_id`` now.
        """
        converted, n, naive = cls._converted(columns)
        cls._filled(converted, n)
        pending = PendingLevels(
            converted["bids"], converted["asks"], converted["spread"], converted["midpoint"]
        )
        return cls(
            converted["ts"],
            converted["token_id"],
            _UNBUILT,
            _UNBUILT,
            _UNBUILT_FLOATS,
            _UNBUILT_FLOATS,
            naive_ts=naive,
            pending=pending,
        )

    @property
    def deferred(self) -> bool:
        """Whether the levels are still to be parsed (see ``from_columns_deferred``)."""
        return self.pending is not None

    def part(self, start: int, stop: int) -> OrderbookBatch:
        """Rows ``start:stop`` as a batch of their own: a deferred batch parses (and keeps)
        those rows' levels only, else a copy. Raises ``IndexError`` outside the batch."""
        pending = self.pending
        if pending is None:
            return ColumnBatch.part(self, start, stop)
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows {start}:{stop} are not within the batch's {len(self)}")
        return pending.part(self, start, stop)

    def level_counts(self) -> NDArray[np.int64]:
        """Each row's levels, both sides (a malformed side counts 0); never parses levels."""
        pending = self.pending
        if pending is not None:
            return pending.counts()
        if self.levels is not None:
            return self.levels.bids.counts + self.levels.asks.counts
        return side_counts(self.bids) + side_counts(self.asks)

    def flat_form(self, name: str) -> FlatLevels | None:
        return None if self.levels is None else self.levels.side(name)

    @classmethod
    def parsed(
        cls, columns: dict[str, NDArray[Any]], naive: NDArray[np.bool_] | None
    ) -> OrderbookBatch:
        """The batch of converted, filled ``columns`` (not copied), levels parsed: what
        ``from_columns`` makes after its conversion (``PendingLevels`` parts)."""
        return cls._assembled(columns, len(columns["ts"]), naive)

    @classmethod
    def completed(
        cls, columns: dict[str, NDArray[Any]]
    ) -> tuple[BookLevels | None, SalvagedLevels | None]:
        """Parse ``columns``' sides in place (``_complete``); their flat levels, or None
        when a side is malformed (the sides then hold tuples, or the input as given), and
        then the well-formed sides' flat levels (``salvaged``)."""
        extras = cls._complete(columns)
        return extras.get("levels"), extras.get("salvaged")

    def _unbuilt(self, name: str) -> bool:
        return name in _LAZY and _LAZY[name].stored(self) is _LAZY[name].marker

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> OrderbookBatch:
        levels = self.levels  # parses the levels of a deferred batch first
        salvaged = None if self.salvaged is None else self.salvaged.take(rows)
        if salvaged is not None and not salvaged.malformed.any():
            # rows without a malformed side: in flat form, as those rows alone would be
            levels, salvaged = salvaged.levels, None
            unbuilt: tuple[str, ...] = ("bids", "asks")
        else:
            levels = None if levels is None else levels.take(rows)
            unbuilt = tuple(name for name in ("bids", "asks") if self._unbuilt(name))
        picked: dict[str, Any] = {
            name: _UNBUILT if name in unbuilt else getattr(self, name)[rows]
            for name in self.COLUMNS
        }
        naive = None if self.naive_ts is None else self.naive_ts[rows]
        return OrderbookBatch(**picked, naive_ts=naive, levels=levels, salvaged=salvaged)

    @classmethod
    def _complete(cls, columns: dict[str, NDArray[Any]]) -> dict[str, Any]:
        """Parse both sides (and derive spread and midpoint where neither is given).

        When every side of both columns is well formed the batch keeps them in
        flat form only (``levels``, with the texts of string levels; the sides'
        tuples are made on first read, as for ``from_flat``), else each side is
        parsed row by row into tuples, malformed ones kept as given for
        ``problems()``, and the well-formed sides are kept in flat form as well
        (``salvaged``: each column's as the column of those sides alone gives it)."""
        n = len(columns["ts"])
        best = {"bids": np.full(n, np.nan), "asks": np.full(n, np.nan)}
        flats: dict[str, FlatLevels] = {}
        given: dict[str, list[Any]] = {}
        bad = {"bids": np.zeros(n, dtype=bool), "asks": np.zeros(n, dtype=bool)}
        for side, descending in (("bids", True), ("asks", False)):
            sides = columns[side].tolist()
            flat = parsed_sides(sides, descending)
            if flat is not None:  # every side well formed: the column in flat form
                flats[side], best[side] = flat, best_prices(flat)
                continue
            normalised = np.empty(n, dtype=object)
            top = best[side]
            given[side] = sides
            for i, levels in enumerate(sides):
                parsed = parse_levels(levels, descending)
                if isinstance(parsed, str):  # malformed: kept as given for problems()
                    normalised[i] = levels
                    bad[side][i] = True
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
        for side, descending in (("bids", True), ("asks", False)):
            if side not in flats:
                flats[side] = _well_formed(given[side], columns[side], bad[side], descending)
        malformed = bad["bids"] | bad["asks"]
        return {"salvaged": SalvagedLevels(BookLevels(flats["bids"], flats["asks"]), malformed)}


_UNBUILT: NDArray[np.object_] = np.empty(0, dtype=object)
"""Marks a side of an ``OrderbookBatch.from_flat`` batch not yet made from its levels."""
_UNBUILT_FLOATS: NDArray[np.float64] = np.empty(0)
"""Marks the spread or midpoint of a deferred batch, not yet derived from its levels."""


def parsed_sides(sides: list[Any], descending: bool) -> FlatLevels | None:
    """A column of sides in flat form, best-first (with texts when any value is a string,
    ``_decimal_levels``); None when a side is malformed (then parse row by row)."""
    flat = decimal_levels(sides, descending)  # string levels in the common shapes
    if flat is not None:
        return flat
    numbers = flat_sides(sides, descending)  # levels of numbers
    if numbers is not None:
        return numbers[0]
    texts = decimal_sides(sides, descending)  # strings in other shapes, side by side
    return texts if isinstance(texts, DecimalLevels) else None


def _well_formed(
    sides: list[Any], parsed: NDArray[np.object_], bad: NDArray[np.bool_], descending: bool
) -> FlatLevels:
    """A column's well-formed sides in flat form, as ``parsed_sides`` gives the column of
    them alone (texts included), a ``bad`` (malformed) side having no levels; when that
    column has no flat form, the floats of its ``parsed`` tuples (a batch of those sides
    writes their floats). Costs a parse of the well-formed sides."""
    good = np.flatnonzero(~bad)
    flat = parsed_sides([sides[i] for i in good.tolist()], descending)
    if flat is None:
        tuples = parsed[good].tolist()
        pairs = np.array(list(chain.from_iterable(tuples)), dtype=np.float64).reshape(-1, 2)
        counts = np.fromiter(map(len, tuples), dtype=np.int64, count=len(tuples))
        flat = FlatLevels(counts, pairs[:, 0].copy(), pairs[:, 1].copy())
    counts = np.zeros(len(bad), dtype=np.int64)
    counts[good] = flat.counts
    return dataclasses.replace(flat, counts=counts)


@dataclass(frozen=True, slots=True)
class SalvagedLevels:
    """The well-formed sides of a batch that has a malformed one, in flat form (a malformed
    side has no levels here; its row is marked ``malformed``): ``OrderbookBatch.take`` of
    rows without one gives them as those rows alone would have them."""

    levels: BookLevels
    malformed: NDArray[np.bool_]

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> SalvagedLevels:
        """The levels and marks of ``rows`` (a mask or row indices)."""
        return SalvagedLevels(self.levels.take(rows), self.malformed[rows])

    def freeze(self) -> None:
        """Make the arrays read-only (a batch owns them)."""
        self.levels.bids.freeze()
        self.levels.asks.freeze()
        self.malformed.flags.writeable = False


def side_counts(sides: NDArray[np.object_]) -> NDArray[np.int64]:
    """Each side's level count (0 for one that is not a list of levels)."""
    return block_map(_count, sides, np.int64)


def _count(side: object) -> int:
    return len(side) if isinstance(side, list | tuple | np.ndarray) else 0


class PendingLevels:
    """A deferred OrderbookBatch's input sides and given spread/midpoint, and the parts
    parsed so far (see ``OrderbookBatch.from_columns_deferred``). Thread-safe: one lock."""

    def __init__(
        self,
        bids: NDArray[np.object_],
        asks: NDArray[np.object_],
        spread: NDArray[np.float64],
        midpoint: NDArray[np.float64],
    ) -> None:
        self.bids, self.asks, self.spread, self.midpoint = bids, asks, spread, midpoint
        self._parts: dict[int, OrderbookBatch] = {}  # by start row
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.bids)

    def counts(self) -> NDArray[np.int64]:
        """Each row's levels, both sides (0 for a malformed side)."""
        return side_counts(self.bids) + side_counts(self.asks)

    def part(self, batch: OrderbookBatch, start: int, stop: int) -> OrderbookBatch:
        """Rows ``start:stop`` of ``batch``, parsed once (kept for ``finish``)."""
        with self._lock:
            made = self._parts.get(start)
            if made is not None and len(made) == stop - start:
                return made
            rows = slice(start, stop)
            columns: dict[str, NDArray[Any]] = {
                "ts": batch.ts[rows],
                "token_id": batch.token_id[rows],
                "bids": self.bids[rows],
                "asks": self.asks[rows],
                "spread": self.spread[rows].copy(),
                "midpoint": self.midpoint[rows].copy(),
            }
            naive = None if batch.naive_ts is None else batch.naive_ts[rows]
            made = OrderbookBatch.parsed(columns, naive)
            self._parts[start] = made
            return made

    def finish(self, batch: OrderbookBatch) -> None:
        """Parse every level of ``batch`` and store the results in its slots: from the
        parts made so far when they cover it in order, else the whole input at once."""
        with self._lock:
            if batch.pending is not self:
                return  # finished meanwhile by another thread
            whole = self._whole(batch)
            for name in ("bids", "asks", "spread", "midpoint"):
                _LAZY[name].slot.__set__(batch, whole[name])
            _LEVELS_SLOT.__set__(batch, whole["levels"])
            if whole["salvaged"] is not None:
                whole["salvaged"].freeze()
            _SALVAGED_SLOT.__set__(batch, whole["salvaged"])
            if whole["levels"] is not None:
                whole["levels"].bids.freeze()
                whole["levels"].asks.freeze()
            for name in ("bids", "asks", "spread", "midpoint"):
                value = whole[name]
                if value is not _UNBUILT:
                    value.flags.writeable = False
            self._parts.clear()
            _PENDING_SLOT.__set__(batch, None)  # last: readers check it first

    def _whole(self, batch: OrderbookBatch) -> dict[str, Any]:
        parts = [self._parts[k] for k in sorted(self._parts)]
        bounds = [0, *np.cumsum([len(p) for p in parts]).tolist()]
        tiled = sorted(self._parts) == bounds[:-1] and bounds[-1] == len(self)
        if tiled and all(p.levels is not None for p in parts):
            levels = [p.levels for p in parts if p.levels is not None]
            return {
                "bids": _UNBUILT,
                "asks": _UNBUILT,
                "spread": _joined([p.spread for p in parts], np.float64),
                "midpoint": _joined([p.midpoint for p in parts], np.float64),
                "levels": BookLevels(
                    concat_levels([lv.bids for lv in levels]),
                    concat_levels([lv.asks for lv in levels]),
                ),
                "salvaged": None,
            }
        columns: dict[str, NDArray[Any]] = {
            "ts": batch.ts,
            "bids": self.bids.copy(),
            "asks": self.asks.copy(),
            "spread": self.spread.copy(),
            "midpoint": self.midpoint.copy(),
        }
        whole, salvaged = OrderbookBatch.completed(columns)
        sides = {k: columns[k] for k in ("bids", "asks", "spread", "midpoint")}
        return {**sides, "levels": whole, "salvaged": salvaged}


def _joined(arrays: list[NDArray[Any]], dtype: type) -> NDArray[Any]:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


class _Lazy:
    """A column attribute of OrderbookBatch that may be made on first read: ``bids``/``asks``
    from the batch's flat levels (``from_flat``), any of the level-derived ones (and
    ``levels``) by parsing a deferred batch's levels (``PendingLevels.finish``)."""

    def __init__(self, slot: Any, name: str, marker: Any) -> None:
        self.slot, self.name, self.marker = slot, name, marker

    def stored(self, batch: OrderbookBatch) -> Any:
        return self.slot.__get__(batch, OrderbookBatch)

    def __get__(self, batch: OrderbookBatch | None, owner: type | None = None) -> Any:
        if batch is None:
            return self
        pending = batch.pending
        if pending is not None:
            pending.finish(batch)
        value = self.slot.__get__(batch, owner)
        if value is _UNBUILT and self.name in ("bids", "asks"):
            levels = _LEVELS_SLOT.__get__(batch, OrderbookBatch)
            if levels is not None:
                sides = side_lists(levels.side(self.name))
                value = np.fromiter(sides, dtype=object, count=len(sides))
                value.flags.writeable = False
                self.slot.__set__(batch, value)  # two threads may both make it: the same value
        return value

    def __set__(self, batch: OrderbookBatch, value: Any) -> None:
        self.slot.__set__(batch, value)


_PENDING_SLOT: Any = OrderbookBatch.__dict__["pending"]
_LEVELS_SLOT: Any = OrderbookBatch.__dict__["levels"]
_SALVAGED_SLOT: Any = OrderbookBatch.__dict__["salvaged"]
_LAZY: dict[str, _Lazy] = {}
for _name, _marker in (
    ("bids", _UNBUILT),
    ("asks", _UNBUILT),
    ("spread", _UNBUILT_FLOATS),
    ("midpoint", _UNBUILT_FLOATS),
    ("levels", None),
    ("salvaged", None),
):
    _LAZY[_name] = _Lazy(OrderbookBatch.__dict__[_name], _name, _marker)
    setattr(OrderbookBatch, _name, _LAZY[_name])


def _consistent(flat: FlatLevels, rows: int) -> bool:
    arrays = (flat.counts, flat.prices, flat.sizes)
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
        return False
    consistent = (
        flat.counts.dtype == np.int64
        and flat.prices.dtype == flat.sizes.dtype == np.float64
        and len(flat.counts) == rows
        and len(flat.prices) == len(flat.sizes) == int(flat.counts.sum())
        and not (flat.counts < 0).any()
    )
    if consistent and isinstance(flat, DecimalLevels):
        texts = (flat.price_text, flat.size_text)
        return all(
            len(t.starts) == len(t.lengths) == len(flat.prices)
            and t.buffer.dtype == np.uint8
            and (not len(t.lengths) or int((t.starts + t.lengths).max()) <= len(t.buffer))
            for t in texts
        )
    return consistent


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
