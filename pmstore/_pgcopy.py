"""PostgreSQL's binary COPY wire format: the constants its encoder and its decoder share.

The stream (PostgreSQL 15, ``COPY ... (FORMAT binary)``; every integer big-endian):

- header: the 11-byte signature ``PGCOPY\\n\\377\\r\\n\\0``, an int32 of flags (0) and
  an int32 header-extension length (0): ``PGCOPY_HEADER``;
- one tuple per row: an int16 field count, then per field an int32 byte length
  (``NULL_LENGTH``, -1, for NULL, with no data following) and the field's bytes;
- trailer: an int16 -1: ``PGCOPY_TRAILER``.

Field data used by pmstore:

- ``timestamptz``: int64 microseconds since 2000-01-01 00:00:00 UTC (the Unix
  microseconds minus ``POSTGRES_EPOCH_OFFSET_US``);
- ``float8``: IEEE 754 binary64; ``int8``: a big-endian int64;
- ``text``: the UTF-8 bytes, no terminator;
- ``float8[]`` (order-book sides, ``[[price, size], ...]``): the array header
  ``LEVELS_HEADER`` (ndim 2, no NULLs, element oid ``FLOAT8_OID``, each
  dimension's length and lower bound) and per element an int32 length (8) and the
  float8 (``LEVEL_DTYPE``: a level's 24 bytes); an empty side has the length 0.

Written by ``pmstore._write.encoding``, read by ``pmstore.frames.copy_decoding``.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

__all__ = [
    "FLOAT8_BYTES",
    "FLOAT8_OID",
    "LEVELS_HEADER",
    "LEVEL_DTYPE",
    "NULL_LENGTH",
    "PGCOPY_HEADER",
    "PGCOPY_SIGNATURE",
    "PGCOPY_TRAILER",
    "POSTGRES_EPOCH_OFFSET_US",
]

PGCOPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
"""The 11 bytes that open every binary COPY stream."""
PGCOPY_HEADER: Final = PGCOPY_SIGNATURE + struct.pack(">ii", 0, 0)
"""Signature, flags (no OIDs) and header-extension length (none): 19 bytes."""
PGCOPY_TRAILER: Final = struct.pack(">h", -1)
"""The int16 -1 that ends the stream."""
NULL_LENGTH: Final = -1
"""A field's length when it is NULL (no data follows)."""
POSTGRES_EPOCH_OFFSET_US: Final = 946_684_800_000_000
"""Microseconds from 1970-01-01 to 2000-01-01 UTC (PostgreSQL's timestamp epoch)."""
FLOAT8_OID: Final = 701
"""The element type (pg_type oid) of a float8 array."""
FLOAT8_BYTES: Final = 8
"""The length of one float8 element."""
LEVELS_HEADER: Final = np.dtype(
    [("ndim", ">i4"), ("has_nulls", ">i4"), ("element_type", ">i4"), ("levels", ">i4"),
     ("lower_bound", ">i4"), ("pair", ">i4"), ("pair_lower_bound", ">i4")]
)  # fmt: skip
"""The header of a side's binary float8[] value: ndim 2, dimensions [levels][2]."""
LEVEL_DTYPE: Final = np.dtype(
    [("price_length", ">i4"), ("price", ">f8"), ("size_length", ">i4"), ("size", ">f8")]
)
"""One level's two elements in a binary float8[] value (each: int32 length, float8)."""
