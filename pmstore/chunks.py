"""Compressed chunks that took late rows: partially compressed chunks, for ``pmstore status``.

TimescaleDB 2.11+ accepts INSERT and COPY into compressed chunks (pmstore's
late prices, books and trades older than the 7-day compression horizon); the
rows land uncompressed beside the compressed ones and the chunk is marked
PARTIAL until the compression policy (or ``compress_chunk``) recompresses it.
Trades stay de-duplicated there: ``INSERT ... ON CONFLICT (trade_id, ts) DO
NOTHING`` checks the compressed rows too (tested on 2.28).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

__all__ = ["PARTIAL_CHUNKS_SQL", "PartialChunk", "partially_compressed_chunks"]

# Bit 8 of a chunk's status is PARTIAL (compressed, with uncompressed rows beside).
PARTIAL_CHUNKS_SQL: Final = """
    SELECT c.hypertable_name, c.chunk_schema, c.chunk_name, c.range_start, c.range_end
    FROM timescaledb_information.chunks c
    JOIN _timescaledb_catalog.chunk k
      ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
    WHERE c.hypertable_schema = current_schema() AND c.is_compressed AND (k.status & 8) = 8
    ORDER BY c.hypertable_name, c.range_start
"""


@dataclass(frozen=True, slots=True)
class PartialChunk:
    """A compressed chunk holding uncompressed (late) rows too."""

    hypertable: str
    chunk: str
    range_start: datetime
    range_end: datetime


def partially_compressed_chunks(conn: psycopg.Connection[Any]) -> list[PartialChunk]:
    """Return the partially compressed chunks of pmstore's hypertables, oldest first per table.

    Empty where nothing is compressed (and on the Apache-2 edition). One
    catalog query; reads TimescaleDB's chunk status flags.
    """
    rows = conn.execute(PARTIAL_CHUNKS_SQL).fetchall()
    return [PartialChunk(str(r[0]), f"{r[1]}.{r[2]}", r[3], r[4]) for r in rows]
