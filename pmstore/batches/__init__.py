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

Layout: the column spec in :mod:`~pmstore.batches._spec`, conversion of the input
forms in :mod:`~pmstore.batches._convert`, the vectorized value checks in
:mod:`~pmstore.batches._checks`, the content digest in
:mod:`~pmstore.batches._digest`, passes over Python objects in row blocks (the GIL
handed over between blocks) in :mod:`~pmstore.batches._blocks`, the shared base class in
:mod:`~pmstore.batches._column_batch` and the three tables in
:mod:`~pmstore.batches._tables`.
"""

from __future__ import annotations

from pmstore.batches._column_batch import ColumnBatch, as_batch
from pmstore.batches._spec import TS_DTYPE, Level
from pmstore.batches._tables import OrderbookBatch, PriceBatch, TradeBatch, derive_trade_id

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
