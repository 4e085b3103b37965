"""PostgreSQL binary COPY encoding of pmstore batches, vectorized with numpy.

The stream's format and its constants are in ``pmstore._pgcopy`` (shared with the
decoder, ``pmstore.frames.copy_decoding``).

How the rows are built, a chunk at a time (``price_chunk`` and its twins encode
given rows, ``encode_*`` stream a batch ``chunk_rows`` rows at a time), without
a Python loop per row (order-book levels: one memory copy per side, their JSON
text laid out by ``pmstore._write.jsonb_levels``):

``pmstore._write.engines`` lays the fields out: by *layouts* (prices, trades:
rows grouped by byte layout), by *compaction* (``keep_order``: widest layout,
padding dropped by a mask) or by *scatter* (order books: JSON sides have no
width bound).

Text goes through ``astype("S")`` when a chunk is all ASCII (Polymarket's
decimal token ids) and is encoded per item only otherwise.

Encode only valid batches (``batch.validated()`` or ``select(~mask)``): the
encoders re-check only what could otherwise be written silently wrong (text
columns holding non-text, missing timestamps) and raise
``BatchValidationError`` for those; other bad values reach the server, whose
constraints may reject them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from pmstore._pgcopy import PGCOPY_HEADER, PGCOPY_TRAILER, POSTGRES_EPOCH_OFFSET_US
from pmstore._write.engines import Field, Fixed, Text, encode_fields
from pmstore._write.jsonb_levels import levels_field, object_levels_field
from pmstore.batches import ColumnBatch, OrderbookBatch, PriceBatch, TradeBatch
from pmstore.errors import BatchValidationError, ConfigurationError, RowProblem

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Rows",
    "encode_orderbooks",
    "encode_prices",
    "encode_trades",
    "orderbook_chunk",
    "price_chunk",
    "trade_chunk",
]

DEFAULT_CHUNK_ROWS: Final = 50_000
"""Rows per yielded chunk: ~6 MB of prices, enough to amortise numpy's per-call cost."""


# -- public encoders ------------------------------------------------------------------------


Rows = slice | NDArray[np.intp]
"""The rows of a batch one chunk holds: a slice, or row indices in the order to send."""


def encode_prices(
    batch: PriceBatch, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, keep_order: bool = False
) -> Iterator[bytes]:
    """Yield ``batch`` as a binary COPY stream for ``price_snapshots`` (ts, token_id, price,
    volume_24h), ``chunk_rows`` rows per chunk: header in the first chunk, trailer last.

    Fully vectorized; rows keep their order unless a chunk mixes token
    lengths or NULL patterns (``price_chunk``). ``keep_order`` always keeps
    it. Raises ``ConfigurationError`` for ``chunk_rows < 1`` and
    ``BatchValidationError`` for a non-text token or a missing timestamp.
    Holds one encoded chunk (~120 bytes a row) at a time.
    """
    return _stream(
        batch,
        lambda rows, prefix: price_chunk(batch, rows, prefix=prefix, keep_order=keep_order),
        _checked_chunk_rows(chunk_rows),
    )


def encode_orderbooks(
    batch: OrderbookBatch, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[bytes]:
    """Yield ``batch`` as a binary COPY stream for ``orderbook_snapshots`` (ts, token_id,
    bids, asks, spread, midpoint; bids/asks jsonb like ``[[0.48,1234.5],[0.47,10]]``,
    ``pmstore._write.jsonb_levels``).

    Row order is kept (``orderbook_chunk``). Raises like ``encode_prices``.
    Holds one encoded chunk at a time.
    """
    return _stream(
        batch,
        lambda rows, prefix: orderbook_chunk(batch, rows, prefix=prefix),
        _checked_chunk_rows(chunk_rows),
    )


def encode_trades(batch: TradeBatch, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[bytes]:
    """Yield ``batch`` as a binary COPY stream for ``trades`` (ts, token_id, side, price,
    size, trade_id), ``chunk_rows`` rows per chunk: header first, trailer last.

    Vectorized like ``encode_prices`` (``trade_chunk``). Raises like ``encode_prices``.
    """
    return _stream(
        batch,
        lambda rows, prefix: trade_chunk(batch, rows, prefix=prefix),
        _checked_chunk_rows(chunk_rows),
    )


def price_chunk(
    batch: PriceBatch, rows: Rows, *, prefix: bytes = b"", keep_order: bool = False
) -> bytes:
    """The COPY tuples of ``batch``'s ``rows`` (in that order), after ``prefix``.

    Without ``keep_order`` rows are grouped by byte layout (token length,
    NULL pattern: ~10 groups), the fastest encoding; with it every row is
    padded to the widest layout and the padding dropped by one boolean
    compaction (about as fast in chunks of up to ~10k rows, slower above:
    the caller picks the size). Raises ``BatchValidationError`` for a
    non-text token or a missing timestamp.
    """
    fields = _spec_fields(batch, rows)
    return encode_fields(fields, _count(batch, rows), prefix, keep_order=keep_order)


def orderbook_chunk(batch: OrderbookBatch, rows: Rows, *, prefix: bytes = b"") -> bytes:
    """The COPY tuples of ``batch``'s ``rows``, after ``prefix``; row order kept.

    The levels' jsonb values are laid out for the whole chunk at once
    (``pmstore._write.jsonb_levels``), from the batch's flat levels
    (``OrderbookBatch.levels``: their texts when they carry them) or from its
    sides' tuples; everything else is vectorized (scatter). Raises like
    ``price_chunk``.
    """
    return encode_fields(_spec_fields(batch, rows), _count(batch, rows), prefix)


def trade_chunk(batch: TradeBatch, rows: Rows, *, prefix: bytes = b"") -> bytes:
    """The COPY tuples of ``batch``'s ``rows``, after ``prefix`` (layouts, else scatter)."""
    return encode_fields(_spec_fields(batch, rows), _count(batch, rows), prefix)


def _count(batch: ColumnBatch, rows: Rows) -> int:
    return len(range(*rows.indices(len(batch)))) if isinstance(rows, slice) else len(rows)


def _row_number(rows: Rows, i: int) -> int:
    """The batch row of a chunk's ``i``-th row."""
    return (rows.start or 0) + i if isinstance(rows, slice) else int(rows[i])


def _checked_chunk_rows(chunk_rows: int) -> int:
    valid = isinstance(chunk_rows, int | np.integer) and not isinstance(chunk_rows, bool)
    if valid and chunk_rows >= 1:
        return int(chunk_rows)
    raise ConfigurationError(f"chunk_rows must be a positive integer, not {chunk_rows!r}")


def _stream(
    batch: ColumnBatch, chunk: Callable[[slice, bytes], bytes], chunk_rows: int
) -> Iterator[bytes]:
    n = len(batch)
    prefix = PGCOPY_HEADER
    for start in range(0, n, chunk_rows):
        yield chunk(slice(start, min(n, start + chunk_rows)), prefix)
        prefix = b""
    if prefix:  # an empty batch: header and trailer only
        yield prefix
    yield PGCOPY_TRAILER


# -- column conversion ----------------------------------------------------------------------


def _spec_fields(batch: ColumnBatch, rows: Rows) -> list[Field]:
    """The COPY fields of ``rows``, one per column of ``batch.SPEC`` (the batch's
    columns, in COPY order): the one column list the encoders follow."""
    fields: list[Field] = []
    for col in batch.SPEC:
        if col.kind == "ts":
            fields.append(_timestamp_field(batch, rows))
        elif col.kind == "text":
            fields.append(text_field(batch, col.name, rows))
        elif col.kind == "levels":
            flat = batch.flat_form(col.name)
            if flat is None:
                fields.append(object_levels_field(getattr(batch, col.name)[rows]))
            else:
                fields.append(levels_field(flat, rows))
        else:
            values = getattr(batch, col.name)[rows]
            fields.append(Fixed(values, ">f8", np.isnan(values) if col.nullable else None))
    return fields


def _timestamp_field(batch: ColumnBatch, rows: Rows) -> Fixed:
    ts = batch.ts[rows]
    missing = np.isnat(ts)
    if missing.any():
        row = _row_number(rows, int(np.argmax(missing)))
        raise BatchValidationError(batch.TABLE, [RowProblem(row, "ts", "timestamp is missing")])
    return Fixed(ts.view(np.int64) - POSTGRES_EPOCH_OFFSET_US, ">i8")


def text_field(batch: ColumnBatch, column: str, rows: Rows) -> Text:
    values: NDArray[np.object_] = getattr(batch, column)[rows]
    if not set(map(type, values)) <= {str}:
        row = next(i for i, v in enumerate(values) if type(v) is not str)
        reason = f"must be text, got {type(values[row]).__name__}"
        problem = RowProblem(_row_number(rows, row), column, reason)
        raise BatchValidationError(batch.TABLE, [problem])
    if len(values) == 0:
        return Text(np.zeros(0, dtype="S1"), np.zeros(0, dtype=np.int64))
    try:
        data = values.astype("S")  # ASCII only; raises on anything else
    except UnicodeEncodeError:
        data = _utf8(batch.TABLE, column, values, rows)
    lengths = np.char.str_len(data).astype(np.int64)
    return Text(data, lengths)


def _utf8(table: str, column: str, values: NDArray[np.object_], rows: Rows) -> NDArray[Any]:
    """Text as UTF-8, item by item (the slow path, for non-ASCII chunks)."""
    encoded: list[bytes] = []
    for i, value in enumerate(values.tolist()):
        try:
            encoded.append(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            reason = f"is not valid Unicode: {exc.reason}"
            problem = RowProblem(_row_number(rows, i), column, reason)
            raise BatchValidationError(table, [problem]) from None
    return np.array(encoded, dtype="S")
