"""PostgreSQL binary COPY encoding of pmstore batches, vectorized with numpy.

The stream (PostgreSQL 15, ``COPY ... FROM STDIN (FORMAT binary)``; every
integer big-endian):

- header: the 11-byte signature ``PGCOPY\\n\\377\\r\\n\\0``, an int32 of flags (0) and
  an int32 header-extension length (0): ``PGCOPY_HEADER``;
- one tuple per row: an int16 field count, then per field an int32 byte length
  (-1 for NULL, with no data following) and the field's bytes;
- trailer: an int16 -1: ``PGCOPY_TRAILER``.

Field data:

- ``timestamptz``: int64 microseconds since 2000-01-01 00:00:00 UTC (the Unix
  microseconds minus ``POSTGRES_EPOCH_OFFSET_US``);
- ``float8``: IEEE 754 binary64 (a NaN in a nullable column is sent as NULL);
- ``text``: the UTF-8 bytes, no terminator;
- ``jsonb``: the version byte ``JSONB_VERSION`` (1) followed by the JSON text.

How the rows are built, a chunk at a time (``price_chunk`` and its twins encode
given rows, ``encode_*`` stream a batch ``chunk_rows`` rows at a time), without
a Python loop per row except for the JSON text of order-book levels (orjson):

- *layouts* (prices, trades): rows with the same text byte-lengths and the
  same NULL pattern have one fixed byte layout, described by a packed numpy
  structured dtype (``nfields >i2, len0 >i4, val0 >i8, len1 >i4, val1 S77, ...``).
  Rows are grouped by layout (a stable argsort of a layout key, skipped when
  there is one layout, so the row order is then kept), each group is filled
  with whole-column assignments straight into the chunk's output buffer.
  With 8,000 77-digit tokens and half the volumes NULL a chunk has ~10 layouts.
- *compaction* (``keep_order``, and chunks with too many layouts): every row
  is written at the widest layout (text at the column's width, NULLs' value
  slots present) with whole-column assignments, then one boolean mask over
  the bytes drops the padding; row order is kept.
- *scatter* (order books: JSON has no width bound): per-row byte offsets come
  from a cumulative sum of the row sizes; fixed-width values are written with
  one fancy-indexed assignment per field and variable-width ones (text, JSON)
  by copying their concatenated bytes.

Text goes through ``astype("S")`` when a chunk is all ASCII (Polymarket's
decimal token ids) and is encoded per item only otherwise.

Encode only valid batches (``batch.validated()`` or ``select(~mask)``): the
encoders re-check only what could otherwise be written silently wrong (text
columns holding non-text, missing timestamps) and raise
``BatchValidationError`` for those; other bad values reach the server, whose
constraints may reject them.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from pmstore.batches import ColumnBatch, OrderbookBatch, PriceBatch, TradeBatch
from pmstore.batches.levels import FlatLevels
from pmstore.errors import BatchValidationError, ConfigurationError, RowProblem

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "JSONB_VERSION",
    "NULL_LENGTH",
    "PGCOPY_HEADER",
    "PGCOPY_SIGNATURE",
    "PGCOPY_TRAILER",
    "POSTGRES_EPOCH_OFFSET_US",
    "encode_orderbooks",
    "encode_prices",
    "encode_trades",
    "orderbook_chunk",
    "price_chunk",
    "trade_chunk",
]

PGCOPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
"""The 11 bytes that open every binary COPY stream."""
PGCOPY_HEADER: Final = PGCOPY_SIGNATURE + struct.pack(">ii", 0, 0)
"""Signature, flags (no OIDs) and header-extension length (none): 19 bytes."""
PGCOPY_TRAILER: Final = struct.pack(">h", -1)
"""The int16 -1 that ends the stream."""
NULL_LENGTH: Final = -1
"""The field length that marks a NULL (no data bytes follow)."""
JSONB_VERSION: Final = b"\x01"
"""The byte that precedes the JSON text of a jsonb value."""
POSTGRES_EPOCH_OFFSET_US: Final = 946_684_800_000_000
"""Microseconds from 1970-01-01 to 2000-01-01 UTC (PostgreSQL's timestamp epoch)."""
DEFAULT_CHUNK_ROWS: Final = 50_000
"""Rows per yielded chunk: ~6 MB of prices, enough to amortise numpy's per-call cost."""

_MAX_LAYOUT_KEY: Final = 1 << 62


# -- a chunk's fields -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A fixed-width field: native values, their wire dtype, and the NULL rows (if any)."""

    values: NDArray[Any]
    wire: str  # ">i8" or ">f8"
    null: NDArray[np.bool_] | None = None


@dataclass(frozen=True, slots=True)
class _Text:
    """A variable-width field as NUL-padded fixed-width bytes plus each row's byte length."""

    data: NDArray[np.bytes_]
    lengths: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Blob:
    """A variable-width field as every row's bytes concatenated, plus each row's length.

    With ``starts``, row i's data is ``head + blob[starts[i]:starts[i] + body] + tail``
    (``body`` = its length minus the head's and tail's): rows' bodies are
    slices of a shared text, in any order, possibly with bytes between them.
    """

    blob: bytes
    lengths: NDArray[np.int64]
    starts: NDArray[np.int64] | None = None
    head: bytes = b""
    tail: bytes = b""


_Field = _Fixed | _Text | _Blob


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
    bids, asks, spread, midpoint; bids/asks jsonb like ``[[0.48,1234.5],[0.47,10.0]]``).

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
    return _encode(fields, _count(batch, rows), prefix, keep_order=keep_order)


def orderbook_chunk(batch: OrderbookBatch, rows: Rows, *, prefix: bytes = b"") -> bytes:
    """The COPY tuples of ``batch``'s ``rows``, after ``prefix``; row order kept.

    The levels' JSON text is made by orjson: one call for the whole chunk when
    the batch carries its levels in flat form (``OrderbookBatch.levels``), else
    one call per side of a book; everything else is vectorized (scatter).
    Raises like ``price_chunk``.
    """
    return _encode(_spec_fields(batch, rows), _count(batch, rows), prefix)


def trade_chunk(batch: TradeBatch, rows: Rows, *, prefix: bytes = b"") -> bytes:
    """The COPY tuples of ``batch``'s ``rows``, after ``prefix`` (layouts, else scatter)."""
    return _encode(_spec_fields(batch, rows), _count(batch, rows), prefix)


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


def _encode(fields: Sequence[_Field], n: int, prefix: bytes, *, keep_order: bool = False) -> bytes:
    """One chunk's bytes: layouts when allowed and worth it, else compaction or scatter."""
    out = None if keep_order else _encode_layouts(fields, n, prefix)
    if out is None:
        out = _encode_compact(fields, n, prefix)
    if out is None:
        out = _encode_scatter(fields, n, prefix)
    return out.tobytes()


# -- column conversion ----------------------------------------------------------------------


def _spec_fields(batch: ColumnBatch, rows: Rows) -> list[_Field]:
    """The COPY fields of ``rows``, one per column of ``batch.SPEC`` (the batch's
    columns, in COPY order): the one column list the encoders follow."""
    fields: list[_Field] = []
    for col in batch.SPEC:
        if col.kind == "ts":
            fields.append(_timestamp_field(batch, rows))
        elif col.kind == "text":
            fields.append(_text_field(batch, col.name, rows))
        elif col.kind == "levels":
            flat = batch._flat_levels(col.name)
            if flat is None:
                fields.append(_levels_field(getattr(batch, col.name)[rows]))
            else:
                fields.append(_flat_levels_field(flat, rows))
        else:
            values = getattr(batch, col.name)[rows]
            fields.append(_Fixed(values, ">f8", np.isnan(values) if col.nullable else None))
    return fields


def _timestamp_field(batch: ColumnBatch, rows: Rows) -> _Fixed:
    ts = batch.ts[rows]
    missing = np.isnat(ts)
    if missing.any():
        row = _row_number(rows, int(np.argmax(missing)))
        raise BatchValidationError(batch.TABLE, [RowProblem(row, "ts", "timestamp is missing")])
    return _Fixed(ts.view(np.int64) - POSTGRES_EPOCH_OFFSET_US, ">i8")


def _text_field(batch: ColumnBatch, column: str, rows: Rows) -> _Text:
    values: NDArray[np.object_] = getattr(batch, column)[rows]
    if not set(map(type, values)) <= {str}:
        row = next(i for i, v in enumerate(values) if type(v) is not str)
        reason = f"must be text, got {type(values[row]).__name__}"
        problem = RowProblem(_row_number(rows, row), column, reason)
        raise BatchValidationError(batch.TABLE, [problem])
    if len(values) == 0:
        return _Text(np.zeros(0, dtype="S1"), np.zeros(0, dtype=np.int64))
    try:
        data = values.astype("S")  # ASCII only; raises on anything else
    except UnicodeEncodeError:
        data = _utf8(batch.TABLE, column, values, rows)
    lengths = np.char.str_len(data).astype(np.int64)
    return _Text(data, lengths)


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


def _levels_field(levels: NDArray[np.object_]) -> _Blob:
    """jsonb values of order-book sides: ``\\x01[[price,size],...]`` per row.

    orjson writes each float's shortest round-trip form, as ``repr`` does
    (finite values only: validated batches have no others), ~6x faster than
    formatting them in Python (benchmarks/README.md).
    """
    texts = list(map(orjson.dumps, levels.tolist()))
    blob = JSONB_VERSION + JSONB_VERSION.join(texts) if texts else b""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + len(JSONB_VERSION)
    return _Blob(blob, lengths)


_OPEN: Final = ord("[")
_CLOSE: Final = ord("]")


def _flat_levels_field(flat: FlatLevels, rows: Rows) -> _Blob:
    """jsonb values of the sides of ``rows`` from a batch's flat levels, as ``_levels_field``.

    One orjson call writes every level of the chunk as ``[[p,s],[p,s],...]``
    (``OPT_SERIALIZE_NUMPY``: the same shortest round-trip text orjson writes
    for a Python float, tested); each row's levels are consecutive in that
    text, commas included, so its value is ``\x01[`` + that slice + ``]``,
    found from the brackets' positions. No Python object per level.
    """
    taken = flat.take(rows)
    text = orjson.dumps(
        np.column_stack((taken.prices, taken.sizes)), option=orjson.OPT_SERIALIZE_NUMPY
    )
    counts = taken.counts
    n = len(counts)
    starts = np.zeros(n, dtype=np.int64)
    bodies = np.zeros(n, dtype=np.int64)
    filled = counts > 0
    if filled.any():
        buf = np.frombuffer(text, dtype=np.uint8)
        opens = np.flatnonzero(buf == _OPEN)[1:]  # each level's "[" (not the outer one)
        closes = np.flatnonzero(buf == _CLOSE)[:-1]  # each level's "]"
        first = (np.cumsum(counts) - counts)[filled]
        starts[filled] = opens[first]
        bodies[filled] = closes[first + counts[filled] - 1] + 1 - opens[first]
    return _Blob(text, bodies + len(JSONB_VERSION) + 2, starts, JSONB_VERSION + b"[", b"]")


# -- engine 1: one structured dtype per row layout --------------------------------------------

_Layout = tuple[tuple[int, str | None], ...]
"""Per field: the int32 length header and the wire dtype of the data (None: no data)."""


@lru_cache(maxsize=1024)
def _row_dtype(layout: _Layout) -> np.dtype[np.void]:
    """The packed (unaligned) structured dtype of one tuple with this layout."""
    parts: list[tuple[str, str]] = [("n", ">i2")]
    for i, (_, wire) in enumerate(layout):
        parts.append((f"l{i}", ">i4"))
        if wire is not None:
            parts.append((f"v{i}", wire))
    return np.dtype(parts)


def _encode_layouts(fields: Sequence[_Field], n: int, prefix: bytes) -> NDArray[np.uint8] | None:
    """Encode the rows group by group, one structured dtype per layout.

    Returns None when a field is a blob or the rows have too many layouts
    (fewer than ~64 rows per layout), where scattering is cheaper.
    """
    plain = [f for f in fields if not isinstance(f, _Blob)]
    if len(plain) != len(fields):
        return None
    key = np.zeros(n, dtype=np.int64)
    digits: list[tuple[int, int]] = []  # per field: (radix, base) of its digit in the key
    radix = 1
    for f in plain:
        base = _key_base(f)
        if isinstance(f, _Text):
            key += f.lengths * radix
        elif f.null is not None:
            key += f.null * radix
        digits.append((radix, base))
        radix *= base
        if radix > _MAX_LAYOUT_KEY:
            return None
    order: NDArray[np.intp] | None = None
    if n == 0 or key.min() == key.max():
        bounds = [0, n]
    else:
        order = np.argsort(key, kind="stable")
        key = key[order]
        cuts = np.flatnonzero(key[1:] != key[:-1]) + 1
        if cuts.size + 1 > n // 64 + 8:
            return None
        bounds = [0, *cuts.tolist(), n]

    groups: list[tuple[int, int, _Layout]] = []
    total = len(prefix)
    for start, stop in itertools.pairwise(bounds):
        group_key = int(key[start]) if n else 0
        layout = tuple(
            _field_layout(f, (group_key // r) % b) for f, (r, b) in zip(plain, digits, strict=True)
        )
        groups.append((start, stop, layout))
        total += (stop - start) * _row_dtype(layout).itemsize

    columns = [_values(f) if order is None else _values(f)[order] for f in fields]
    out = np.empty(total, dtype=np.uint8)
    out[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    offset = len(prefix)
    for start, stop, layout in groups:
        dtype = _row_dtype(layout)
        size = (stop - start) * dtype.itemsize
        rows = out[offset : offset + size].view(dtype)
        offset += size
        rows["n"] = len(fields)
        for i, ((length, wire), values) in enumerate(zip(layout, columns, strict=True)):
            rows[f"l{i}"] = length
            if wire is not None:
                rows[f"v{i}"] = values[start:stop]
    return out


def _key_base(f: _Fixed | _Text) -> int:
    """How many values a field's digit of the layout key takes."""
    if isinstance(f, _Text):
        return f.data.dtype.itemsize + 1  # byte lengths 0..width
    return 1 if f.null is None else 2  # NULL or not


def _field_layout(f: _Fixed | _Text, digit: int) -> tuple[int, str | None]:
    """A field's (length header, wire dtype) in the layout where its key digit is ``digit``."""
    if isinstance(f, _Text):
        return digit, (f"S{digit}" if digit else None)
    if digit:
        return NULL_LENGTH, None
    return np.dtype(f.wire).itemsize, f.wire


def _values(f: _Fixed | _Text | _Blob) -> NDArray[Any]:
    assert not isinstance(f, _Blob)
    return f.values if isinstance(f, _Fixed) else f.data


# -- engine 2: pad every row to the widest layout, then drop the padding -------------------


def _encode_compact(fields: Sequence[_Field], n: int, prefix: bytes) -> NDArray[np.uint8] | None:
    """Encode rows in their order: one padded structured row each, then a boolean compaction.

    Each row is written at its widest layout (text at the column's width, a
    NULL's value slot present); a byte mask then keeps each row's real bytes.
    Costs ~2 bytes of temporaries per output byte and no per-row Python work.
    Returns None when a field is a blob (JSON): no width bounds it.
    """
    if any(isinstance(f, _Blob) for f in fields):
        return None
    widest = tuple(
        (0, f"S{max(f.data.dtype.itemsize, 1)}") if isinstance(f, _Text) else (0, f.wire)
        for f in fields
        if not isinstance(f, _Blob)
    )
    dtype = _row_dtype(widest)
    rows = np.empty(n, dtype=dtype)
    rows["n"] = len(fields)
    keep = np.ones((n, dtype.itemsize), dtype=bool)
    for i, f in enumerate(fields):
        assert not isinstance(f, _Blob)
        start = dtype.fields[f"v{i}"][1] if dtype.fields else 0
        if isinstance(f, _Text):
            width = dtype[f"v{i}"].itemsize
            rows[f"l{i}"] = f.lengths
            rows[f"v{i}"] = f.data
            keep[:, start : start + width] = np.arange(width) < f.lengths[:, None]
        else:
            width = np.dtype(f.wire).itemsize
            rows[f"v{i}"] = f.values
            if f.null is None:
                rows[f"l{i}"] = width
            else:
                rows[f"l{i}"] = np.where(f.null, NULL_LENGTH, width)
                keep[:, start : start + width] = ~f.null[:, None]
    flat = rows.view(np.uint8).reshape(n, dtype.itemsize)
    body = keep.ravel()
    out = np.empty(len(prefix) + int(np.count_nonzero(body)), dtype=np.uint8)
    out[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    np.compress(body, flat.ravel(), out=out[len(prefix) :])
    return out


# -- engine 3: scatter into per-row offsets ------------------------------------------------------


def _encode_scatter(fields: Sequence[_Field], n: int, prefix: bytes) -> NDArray[np.uint8]:
    """Encode rows of any shape: offsets from a cumulative sum, values scattered into place."""
    data_lengths = [_data_lengths(f) for f in fields]
    sizes = np.full(n, 2 + 4 * len(fields), dtype=np.int64)
    for lengths in data_lengths:
        sizes += lengths
    ends = np.cumsum(sizes) + len(prefix)
    out = np.empty(int(ends[-1]) if n else len(prefix), dtype=np.uint8)
    out[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    cursor = ends - sizes
    _scatter_fixed(out, cursor, np.full(n, len(fields), dtype=">i2"))
    cursor += 2
    for f, lengths in zip(fields, data_lengths, strict=True):
        header = lengths.astype(">i4")
        if isinstance(f, _Fixed) and f.null is not None:
            header[f.null] = NULL_LENGTH
        _scatter_fixed(out, cursor, header)
        cursor += 4
        if isinstance(f, _Fixed):
            present = slice(None) if f.null is None else ~f.null
            _scatter_fixed(out, cursor[present], f.values[present].astype(f.wire))
        elif isinstance(f, _Text):
            width = f.data.dtype.itemsize
            padded = f.data.view(np.uint8).reshape(n, width)
            _scatter_blob(out, cursor, padded[np.arange(width) < f.lengths[:, None]], lengths)
        else:
            _copy_blob(out, cursor, f)
        cursor += lengths
    return out


def _data_lengths(f: _Field) -> NDArray[np.int64]:
    """Each row's data bytes for a field (0 for NULL)."""
    if isinstance(f, _Fixed):
        width = np.dtype(f.wire).itemsize
        if f.null is None:
            return np.full(len(f.values), width, dtype=np.int64)
        return np.where(f.null, 0, width).astype(np.int64)
    return f.lengths


def _scatter_fixed(
    out: NDArray[np.uint8], positions: NDArray[np.int64], values: NDArray[Any]
) -> None:
    width = values.dtype.itemsize
    out[positions[:, None] + np.arange(width)] = values.view(np.uint8).reshape(-1, width)


def _scatter_blob(
    out: NDArray[np.uint8],
    positions: NDArray[np.int64],
    blob: NDArray[np.uint8],
    lengths: NDArray[np.int64],
) -> None:
    """Scatter the concatenated ``blob`` so that row i's bytes start at ``positions[i]``.

    Builds an index per byte: right for short values (tokens), too costly for long ones.
    """
    starts_in_blob = np.cumsum(lengths) - lengths
    out[np.repeat(positions - starts_in_blob, lengths) + np.arange(blob.size)] = blob


def _copy_blob(out: NDArray[np.uint8], positions: NDArray[np.int64], f: _Blob) -> None:
    """Copy row i's bytes of ``f`` to ``positions[i]``: one memoryview copy per row (its
    head and tail, if any, written for all rows at once).

    For long values (JSON) this beats a per-byte index, which costs ~8 bytes of
    index and a page fault or two per byte copied.
    """
    head, tail = len(f.head), len(f.tail)
    lengths = f.lengths - head - tail
    if head:
        out[positions[:, None] + np.arange(head)] = np.frombuffer(f.head, dtype=np.uint8)
    if tail:
        ends = positions + f.lengths - tail
        out[ends[:, None] + np.arange(tail)] = np.frombuffer(f.tail, dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths if f.starts is None else f.starts
    target, source = out.data, memoryview(f.blob)
    for position, start, length in zip(
        (positions + head).tolist(), starts.tolist(), lengths.tolist(), strict=True
    ):
        target[position : position + length] = source[start : start + length]
