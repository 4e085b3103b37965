"""PostgreSQL binary ``COPY ... TO`` bytes -> pyarrow, vectorized with numpy.

The inverse of ``pmstore._write.encoding`` (see its docstring for the stream's
layout: a 19-byte header, one tuple per row, an int16 -1 trailer), for the
column types pmstore reads:

| arrow type                     | PostgreSQL type | wire                                   |
|--------------------------------|-----------------|----------------------------------------|
| ``timestamp("us", tz="UTC")``  | timestamptz     | int64 µs since 2000-01-01 UTC          |
| ``float64``                    | float8          | IEEE 754 binary64                      |
| ``int64`` / ``int32``          | int8 / int4     | big-endian integer                     |
| ``string``                     | text, varchar   | UTF-8 bytes                            |
| ``string`` (``JSONB_METADATA``)| jsonb           | version byte 1, then the JSON text     |

Pure functions of bytes: no connection, no I/O, so the sync and the async
Reader (and anything holding COPY bytes) share them.

Chunks must hold whole rows. That is what a server sends: in ``COPY TO`` each
CopyData message is one row (the header rides with the first, the trailer comes
alone), and psycopg's ``Copy`` yields one message per iteration. Row starts are
then the chunk boundaries, and every field is read for all rows at once: one
numpy gather per field for its length and its value. A chunk of several whole
rows is walked row by row across all chunks at once (one numpy pass per row of
the longest chunk); a row split across chunks raises CopyDecodeError.

Text becomes an arrow string *view* array pointing into the received bytes
(no per-value work in Python), then one arrow cast compacts it into a plain
``string`` column.
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from pmstore._optional import compiled_module, require
from pmstore._pgcopy import (
    JSONB_VERSION,
    PGCOPY_HEADER_FIXED,
    PGCOPY_SIGNATURE,
    POSTGRES_EPOCH_OFFSET_US,
)
from pmstore.errors import CopyDecodeError

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "JSONB_METADATA",
    "Chunk",
    "CopyDecoder",
    "decode_copy",
    "iter_record_batches",
]

Chunk = bytes | bytearray | memoryview
"""Bytes of the stream as received: one CopyData message (or several whole rows)."""
Buffer = bytes | bytearray
"""Whole messages back to back, then ``_PAD`` zero bytes: what the column gathers read."""

JSONB_METADATA: Final = {b"pmstore.postgres_type": b"jsonb"}
"""A string field's metadata when its column is jsonb (order-book sides): each value's
version byte is checked and dropped, the JSON text kept as the server sends it."""
DEFAULT_BATCH_ROWS: Final = 50_000
"""Rows decoded into one record batch by ``iter_record_batches`` (~6 MB of prices)."""

_PAD: Final = 16  # zero bytes after the data: gathers of NULL fields never run off the end
_MAX_VIEW_OFFSET: Final = (1 << 31) - 1
_TIMESTAMP_LIMIT: Final = 1 << 62  # beyond: PostgreSQL's +-infinity, not representable


@functools.lru_cache(maxsize=1)
def _fixed_kinds(pa: Any) -> dict[Any, tuple[str, int]]:
    """Arrow type -> (big-endian wire dtype, byte width) of the fixed-width columns."""
    return {
        pa.timestamp("us", tz="UTC"): (">i8", 8),
        pa.float64(): (">f8", 8),
        pa.int64(): (">i8", 8),
        pa.int32(): (">i4", 4),
    }


class CopyDecoder:
    """Decodes one binary COPY stream, a list of whole-row chunks at a time.

    ``decode(chunks)`` returns the rows of those chunks as a ``pyarrow.RecordBatch``
    of ``schema``; the first call must start with the stream's header. ``done``
    turns True once the trailer was seen; ``finish()`` raises if it was not.
    Not thread-safe (it remembers whether the header was read). Rows are found by
    the compiled walk (``pmstore._copydata``) where built, else, and for any
    batch it declines, by numpy; ``compiled=False`` asks for numpy alone (same
    results and errors).
    """

    def __init__(self, schema: Any, *, compiled: bool = True) -> None:
        pa = require("pyarrow")
        fixed = _fixed_kinds(pa)
        for field in schema:
            if field.type not in fixed and field.type != pa.string():
                raise CopyDecodeError(
                    f"column {field.name!r}: cannot decode arrow type {field.type} from COPY"
                )
        self.schema = schema
        self._compiled = compiled_module() if compiled else None
        self._pa = pa
        self._fixed = fixed
        self._header_read = False
        self.done = False
        self.rows = 0

    def finish(self) -> None:
        """Raise CopyDecodeError unless the stream's trailer was decoded."""
        if not self.done:
            raise CopyDecodeError("the COPY stream ended without its trailer (cut short?)")

    def decode(self, chunks: Sequence[Chunk]) -> Any:
        """Decode ``chunks`` (whole rows each) into a ``pyarrow.RecordBatch``.

        Raises CopyDecodeError for a bad header, a row split across chunks, a
        field count or value width not matching the schema, data after the
        trailer. Costs a concatenation of the chunks plus a few numpy passes
        per column; text is copied once, by arrow.
        """
        sizes = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        return self.decode_messages(bytearray().join(chunks), sizes)

    def decode_messages(self, data: bytearray, sizes: NDArray[np.int64]) -> Any:
        """Decode messages stored back to back in ``data``, ``sizes[i]`` bytes each
        (whole rows each), into a ``pyarrow.RecordBatch``, as ``decode`` does.

        ``data`` is padded in place and then belongs to the result (text is read
        from it without a copy until the final cast): do not change it afterwards.
        Same errors as ``decode``; costs a few numpy passes per column.
        """
        if int(sizes.sum()) != len(data):
            raise CopyDecodeError(
                f"{len(data)} bytes, but the message sizes add up to {int(sizes.sum())}"
            )
        data += bytes(_PAD)
        ends = np.cumsum(sizes)
        starts = ends - sizes
        total = int(ends[-1]) if len(ends) else 0
        if not self._header_read and total:
            starts[0] = self._read_header(data)
        if self.done and total:
            raise CopyDecodeError("data after the COPY stream's trailer")
        keep = starts < ends
        starts, ends = starts[keep], ends[keep]
        walked = self._walk_compiled(data, starts, ends)
        offsets, lengths = walked or self._row_offsets(data, starts, ends, total)
        self.rows += len(offsets[0])
        return self._columns(data, offsets, lengths)

    # -- stream structure -----------------------------------------------------------

    def _read_header(self, data: Buffer) -> int:
        if data[: len(PGCOPY_SIGNATURE)] != PGCOPY_SIGNATURE:
            raise CopyDecodeError("not a binary COPY stream (no PGCOPY signature)")
        flags, extension = struct.unpack_from(">ii", data, len(PGCOPY_SIGNATURE))
        if flags & 0xFFFF0000 or flags & (1 << 16):
            raise CopyDecodeError(f"unsupported binary COPY header flags {flags:#x}")
        self._header_read = True
        return PGCOPY_HEADER_FIXED + int(extension)

    def _row_offsets(
        self, data: Buffer, starts: NDArray[np.int64], ends: NDArray[np.int64], total: int
    ) -> _Walked:
        """Every row's field offsets and lengths (see ``_walk``), rows in stream order.

        Row starts are the chunk starts, then (for chunks of several rows) the
        previous rows' ends. The trailer (a field count of -1) may end the last
        chunk or be a chunk of its own.
        """
        found: list[NDArray[np.int64]] = []
        position, limit = starts, ends
        while True:
            trailer = _gather(data, position, ">i2") == -1
            if trailer.any():
                where = position[trailer]
                if len(where) > 1 or int(where[0]) != total - 2:
                    raise CopyDecodeError("data after the COPY stream's trailer")
                self.done = True
                position, limit = position[~trailer], limit[~trailer]
            walked = self._walk(data, position, total)
            row_end = walked[0][-1]
            if (row_end > limit).any():
                raise CopyDecodeError("a row is split across chunks (give whole rows)")
            more = row_end < limit
            if not found and not more.any():
                return walked  # the usual case: one row a chunk, walked once
            found.append(position)
            if not more.any():
                break
            position, limit = row_end[more], limit[more]
        return self._walk(data, np.sort(np.concatenate(found)), total)

    def _walk_compiled(
        self, data: Buffer, starts: NDArray[np.int64], ends: NDArray[np.int64]
    ) -> _Walked | None:
        """``_row_offsets`` in one pass of C (``pmstore._copydata.walk``) for the usual
        stream, one row a message, the trailer a message of its own; None for any
        other (or without the compiled module): the numpy walk then decodes, and
        raises what it must."""
        if self._compiled is None:
            return None
        fields, n = len(self.schema), len(starts)
        offsets = np.empty((fields + 2, n), dtype=np.int64)
        lengths = np.empty((fields, n), dtype=np.int32)
        found = self._compiled.walk(data, starts, ends, fields, offsets, lengths)
        if found is None:
            return None
        rows, trailer = found
        if trailer:
            self.done = True
        return list(offsets[:, :rows]), list(lengths[:, :rows])

    def _walk(self, data: Buffer, rows: NDArray[np.int64], total: int) -> _Walked:
        """For rows starting at ``rows``: the offsets of the row starts, of each field's
        length word and of the row ends; and each field's length (-1: NULL).
        CopyDecodeError for a length below -1 or a length word past the ``total`` bytes
        (a row ending past its chunk is ``_row_offsets``' check)."""
        count = _gather(data, rows, ">i2")
        expected = len(self.schema)
        if (count != expected).any():
            bad = int(count[np.argmax(count != expected)])
            raise CopyDecodeError(
                f"a row has {bad} fields; the schema has {expected} "
                "(a schema not matching the query, or a row split across chunks)"
            )
        position = rows + 2
        offsets = [rows, position]
        lengths = []
        for field in self.schema:
            if (position > total - 4).any():
                raise CopyDecodeError(
                    f"column {field.name!r}: past the end of the data (a row split across "
                    "chunks, or a corrupt field length)"
                )
            length = _gather(data, position, ">i4")
            if (length < -1).any():
                row = int(np.argmax(length < -1))
                raise CopyDecodeError(
                    f"column {field.name!r}, row {row}: a field length of {int(length[row])}"
                )
            lengths.append(length)
            position = position + 4 + np.maximum(length, 0)
            offsets.append(position)
        return offsets, lengths

    # -- columns ----------------------------------------------------------------------

    def _columns(
        self, data: Buffer, offsets: list[NDArray[np.int64]], lengths: list[NDArray[np.int32]]
    ) -> Any:
        pa = self._pa
        n = len(offsets[0])
        arrays = []
        for i, field in enumerate(self.schema):
            position, length = offsets[i + 1], lengths[i]
            null = length == -1
            validity = (
                None if not null.any() else pa.py_buffer(np.packbits(~null, bitorder="little"))
            )
            if field.type == pa.string():
                if field.metadata == JSONB_METADATA:
                    position, length = _jsonb_texts(field.name, data, position, length, null)
                arrays.append(self._text(field, data, position + 4, length, null, validity))
                continue
            wire, width = self._fixed[field.type]
            wrong = ~null & (length != width)
            if wrong.any():
                row = int(np.argmax(wrong))
                raise CopyDecodeError(
                    f"column {field.name!r}, row {row}: a {length[row]}-byte value where "
                    f"{field.type} needs {width} bytes (wrong schema for the query?)"
                )
            values = _gather(data, position + 4, wire).astype(wire[1:])
            if field.type == pa.timestamp("us", tz="UTC"):
                if (np.abs(values[~null]) > _TIMESTAMP_LIMIT).any():
                    raise CopyDecodeError(f"column {field.name!r}: an infinite timestamp")
                values += POSTGRES_EPOCH_OFFSET_US
            if validity is not None:
                values[null] = 0
            arrays.append(pa.Array.from_buffers(field.type, n, [validity, pa.py_buffer(values)]))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _text(
        self,
        field: Any,
        data: Buffer,
        position: NDArray[np.int64],
        length: NDArray[np.int32],
        null: NDArray[np.bool_],
        validity: Any,
    ) -> Any:
        """A string column: 16-byte views into ``data``, compacted by arrow's cast."""
        pa = self._pa
        n = len(position)
        if len(data) > _MAX_VIEW_OFFSET:
            raise CopyDecodeError("more than 2 GiB of COPY data in one decode() call")
        size = np.where(null, 0, length).astype(np.int32)
        views = np.zeros((n, 16), dtype=np.uint8)
        words = views.view(np.int32)  # per view: length, then prefix/inline, index, offset
        words[:, 0] = size
        short = size <= 12
        inline = _gather_bytes(data, position[short], size[short], 12)
        views[short, 4:16] = inline
        long_rows = ~short
        views[long_rows, 4:8] = _gather_bytes(data, position[long_rows], size[long_rows], 4)
        words[long_rows, 2] = 0  # buffer index: the one data buffer
        words[long_rows, 3] = position[long_rows].astype(np.int32)
        array = pa.Array.from_buffers(
            pa.string_view(), n, [validity, pa.py_buffer(views), pa.py_buffer(data)]
        )
        try:
            array.validate(full=True)  # UTF-8 and bounds: the bytes came from outside
        except pa.ArrowInvalid as exc:
            raise CopyDecodeError(f"column {field.name!r}: invalid text: {exc}") from exc
        return array.cast(pa.string())


_Walked = tuple[list[NDArray[np.int64]], list[NDArray[np.int32]]]


def _jsonb_texts(
    name: str, data: Buffer, at: NDArray[np.int64], length: NDArray[np.int32], null: Any
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """A jsonb column's JSON texts: each value's field offset and length past its version
    byte (checked: 1); CopyDecodeError naming the row otherwise."""
    version = _gather(data, at + 4, ">u1")
    wrong = ~null & ((length < 1) | (version != JSONB_VERSION[0]))
    if wrong.any():
        raise CopyDecodeError(
            f"column {name!r}, row {int(np.argmax(wrong))}: not a jsonb value of version 1"
        )
    return at + 1, np.where(null, length, length - 1).astype(np.int32)


def _gather(data: Buffer, positions: NDArray[np.int64], wire: str) -> NDArray[Any]:
    """The big-endian ``wire`` value at each of ``positions``: one 1-D gather from an
    overlapping view of ``data`` whose item i is the bytes starting at byte i."""
    width = np.dtype(wire).itemsize
    every_offset = np.ndarray((len(data) - width + 1,), dtype=wire, buffer=data, strides=(1,))
    return every_offset[positions]


def _gather_bytes(
    data: Buffer, positions: NDArray[np.int64], sizes: NDArray[np.int32], width: int
) -> NDArray[np.uint8]:
    """The first ``width`` bytes at each position, zeroed past each row's size."""
    picked = _gather(data, positions, f"V{width}").view(np.uint8).reshape(-1, width)
    picked[np.arange(width) >= sizes[:, None]] = 0
    return picked


def iter_record_batches(
    chunks: Iterable[Chunk],
    schema: Any,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[Any]:
    """Yield ``pyarrow.RecordBatch`` es of ``batch_rows`` rows (when chunks are single rows,
    as a server sends them) decoded from a whole binary COPY stream.

    Holds one batch's bytes at a time: for streaming (``pmstore export``). Raises
    CopyDecodeError as ``CopyDecoder.decode`` does, or when the stream has no
    trailer. Empty batches are not yielded.
    """
    decoder = CopyDecoder(schema)
    # Each chunk as bytes at once: psycopg's memoryviews pin the client library's
    # buffers, and holding a batch of them costs more than copying (measured: 2x).
    source = map(bytes, chunks)
    while pending := list(itertools.islice(source, batch_rows)):
        batch = decoder.decode(pending)
        del pending  # hold one batch's bytes at a time
        if batch.num_rows:
            yield batch
    decoder.finish()


def decode_copy(chunks: Iterable[Chunk], schema: Any) -> Any:
    """Return a whole binary COPY stream's rows as a ``pyarrow.Table`` of ``schema``.

    Raises CopyDecodeError as ``iter_record_batches`` does. Costs about the
    stream's size in memory twice (bytes and columns), one batch at a time.
    """
    pa = require("pyarrow")
    return pa.Table.from_batches(list(iter_record_batches(chunks, schema)), schema=schema)
