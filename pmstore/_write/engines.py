"""The three engines that lay a chunk's fields out as binary COPY tuples (no I/O).

``pmstore._write.encoding`` turns a batch's rows into fields (``Fixed``
numbers, ``Text`` padded bytes with lengths, ``Blob`` concatenated
variable-width values such as order-book sides' JSON) and
``encode_fields`` writes them as tuples, with no Python loop per row:

- *layouts*: rows with the same text byte-lengths and NULL pattern share one
  packed structured dtype; rows are grouped by layout and each group filled
  with whole-column assignments;
- *compaction* (``keep_order``, or too many layouts): every row at the
  widest layout, then one boolean mask over the bytes drops the padding;
- *scatter* (blobs: JSON sides have no width bound): per-row offsets from a
  cumulative sum, values scattered or copied into place.

See ``pmstore._pgcopy`` for the wire format.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from pmstore._pgcopy import NULL_LENGTH

__all__ = ["Blob", "Field", "Fixed", "Text", "encode_fields"]


_MAX_LAYOUT_KEY: Final = 1 << 62


# -- a chunk's fields -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixed:
    """A fixed-width field: native values, their wire dtype, and the NULL rows (if any)."""

    values: NDArray[Any]
    wire: str  # ">i8" or ">f8"
    null: NDArray[np.bool_] | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """A variable-width field as NUL-padded fixed-width bytes plus each row's byte length."""

    data: NDArray[np.bytes_]
    lengths: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Blob:
    """A variable-width field as every row's bytes concatenated, plus each row's length.

    With ``starts``, row i's data is ``head + blob[starts[i]:starts[i] + body] + tail``
    (``body`` = its length minus the head's and tail's): rows' bodies are
    slices of a shared text, in any order, possibly with bytes between them.
    """

    blob: bytes | NDArray[np.uint8]
    lengths: NDArray[np.int64]
    starts: NDArray[np.int64] | None = None
    head: bytes = b""
    tail: bytes = b""


Field = Fixed | Text | Blob


def encode_fields(
    fields: Sequence[Field], n: int, prefix: bytes, *, keep_order: bool = False
) -> bytes:
    """One chunk's bytes: layouts when allowed and worth it, else compaction or scatter."""
    out = None if keep_order else encode_layouts(fields, n, prefix)
    if out is None:
        out = _encode_compact(fields, n, prefix)
    if out is None:
        out = encode_scatter(fields, n, prefix)
    return out.tobytes()


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


def encode_layouts(fields: Sequence[Field], n: int, prefix: bytes) -> NDArray[np.uint8] | None:
    """Encode the rows group by group, one structured dtype per layout.

    Returns None when a field is a blob or the rows have too many layouts
    (fewer than ~64 rows per layout), where scattering is cheaper.
    """
    plain = [f for f in fields if not isinstance(f, Blob)]
    if len(plain) != len(fields):
        return None
    key = np.zeros(n, dtype=np.int64)
    digits: list[tuple[int, int]] = []  # per field: (radix, base) of its digit in the key
    radix = 1
    for f in plain:
        base = _key_base(f)
        if isinstance(f, Text):
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


def _key_base(f: Fixed | Text) -> int:
    """How many values a field's digit of the layout key takes."""
    if isinstance(f, Text):
        return f.data.dtype.itemsize + 1  # byte lengths 0..width
    return 1 if f.null is None else 2  # NULL or not


def _field_layout(f: Fixed | Text, digit: int) -> tuple[int, str | None]:
    """A field's (length header, wire dtype) in the layout where its key digit is ``digit``."""
    if isinstance(f, Text):
        return digit, (f"S{digit}" if digit else None)
    if digit:
        return NULL_LENGTH, None
    return np.dtype(f.wire).itemsize, f.wire


def _values(f: Fixed | Text | Blob) -> NDArray[Any]:
    assert not isinstance(f, Blob)
    return f.values if isinstance(f, Fixed) else f.data


# -- engine 2: pad every row to the widest layout, then drop the padding -------------------


def _encode_compact(fields: Sequence[Field], n: int, prefix: bytes) -> NDArray[np.uint8] | None:
    """Encode rows in their order: one padded structured row each, then a boolean compaction.

    Each row is written at its widest layout (text at the column's width, a
    NULL's value slot present); a byte mask then keeps each row's real bytes.
    Costs ~2 bytes of temporaries per output byte and no per-row Python work.
    Returns None when a field is a blob (a JSON side): no width bounds it.
    """
    if any(isinstance(f, Blob) for f in fields):
        return None
    widest = tuple(
        (0, f"S{max(f.data.dtype.itemsize, 1)}") if isinstance(f, Text) else (0, f.wire)
        for f in fields
        if not isinstance(f, Blob)
    )
    dtype = _row_dtype(widest)
    rows = np.empty(n, dtype=dtype)
    rows["n"] = len(fields)
    keep = np.ones((n, dtype.itemsize), dtype=bool)
    for i, f in enumerate(fields):
        assert not isinstance(f, Blob)
        start = dtype.fields[f"v{i}"][1] if dtype.fields else 0
        if isinstance(f, Text):
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


def encode_scatter(fields: Sequence[Field], n: int, prefix: bytes) -> NDArray[np.uint8]:
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
        if isinstance(f, Fixed) and f.null is not None:
            header[f.null] = NULL_LENGTH
        _scatter_fixed(out, cursor, header)
        cursor += 4
        if isinstance(f, Fixed):
            present = slice(None) if f.null is None else ~f.null
            _scatter_fixed(out, cursor[present], f.values[present].astype(f.wire))
        elif isinstance(f, Text):
            width = f.data.dtype.itemsize
            padded = f.data.view(np.uint8).reshape(n, width)
            _scatter_blob(out, cursor, padded[np.arange(width) < f.lengths[:, None]], lengths)
        else:
            _copy_blob(out, cursor, f)
        cursor += lengths
    return out


def _data_lengths(f: Field) -> NDArray[np.int64]:
    """Each row's data bytes for a field (0 for NULL)."""
    if isinstance(f, Fixed):
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


def _copy_blob(out: NDArray[np.uint8], positions: NDArray[np.int64], f: Blob) -> None:
    """Copy row i's bytes of ``f`` to ``positions[i]``: one memoryview copy per row (its
    head and tail, if any, written for all rows at once).

    For long values (order-book sides) this beats a per-byte index, which costs ~8 bytes of
    index and a page fault or two per byte copied.
    """
    head = len(f.head)
    tail = len(f.tail)
    lengths = f.lengths - head - tail
    if head:
        out[positions[:, None] + np.arange(head)] = np.frombuffer(f.head, dtype=np.uint8)
    if tail:
        ends = positions + f.lengths - tail
        out[ends[:, None] + np.arange(tail)] = np.frombuffer(f.tail, dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths if f.starts is None else f.starts
    source = f.blob.data if isinstance(f.blob, np.ndarray) else memoryview(f.blob)
    target = out.data
    for position, start, length in zip(
        (positions + head).tolist(), starts.tolist(), lengths.tolist(), strict=True
    ):
        target[position : position + length] = source[start : start + length]
