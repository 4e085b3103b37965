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
- ``jsonb`` (order-book sides, ``[[price, size], ...]``): the format version
  byte ``JSONB_VERSION`` (1) and the JSON text, UTF-8, which the server parses
  as it parses text input (``jsonb_recv``): a JSON number becomes a ``numeric``
  holding exactly the digits sent.

Written by ``pmstore._write.encoding`` (levels: ``pmstore._write.jsonb_levels``),
read by ``pmstore.frames.copy_decoding`` and ``pmstore._read.bulk``, from the statement
``copy_statement`` makes of a query.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "JSONB_VERSION",
    "NULL_LENGTH",
    "PGCOPY_HEADER",
    "PGCOPY_HEADER_FIXED",
    "PGCOPY_SIGNATURE",
    "PGCOPY_TRAILER",
    "POSTGRES_EPOCH_OFFSET_US",
    "copy_statement",
]

PGCOPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
"""The 11 bytes that open every binary COPY stream."""
PGCOPY_HEADER: Final = PGCOPY_SIGNATURE + struct.pack(">ii", 0, 0)
"""Signature, flags (no OIDs) and header-extension length (none): 19 bytes."""
PGCOPY_HEADER_FIXED: Final = len(PGCOPY_SIGNATURE) + 8
"""The header's bytes before its extension (signature, flags, extension length): a
reader's header is this plus the extension length it reads."""
PGCOPY_TRAILER: Final = struct.pack(">h", -1)
"""The int16 -1 that ends the stream."""
NULL_LENGTH: Final = -1
"""A field's length when it is NULL (no data follows)."""
POSTGRES_EPOCH_OFFSET_US: Final = 946_684_800_000_000
"""Microseconds from 1970-01-01 to 2000-01-01 UTC (PostgreSQL's timestamp epoch)."""
JSONB_VERSION: Final = b"\x01"
"""The first byte of a binary ``jsonb`` value: its format version, 1."""


def copy_statement(sql: str) -> str:
    """The binary ``COPY (sql) TO STDOUT`` statement of a query."""
    return f"COPY ({sql}) TO STDOUT (FORMAT binary)"
