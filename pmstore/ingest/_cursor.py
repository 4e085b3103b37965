"""Resume state of ``pmstore ingest``: which file this is, and how far each table got.

The tables and the function that moves a cursor are in
``migrations/0012_ingest_cursors.sql``. A file is identified by the SHA-256
of its first 64 KiB of decompressed content (of all of it when it was
smaller at its first run): a renamed, moved or re-compressed file is the
same file, and a file that grew keeps its identity. Each table (and
``rejects``) has its own cursor row; a flush moves each row in the same
transaction as that table's batch (``statements_for``), so whatever point a
run is killed at, the rows it committed and its cursors agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from pmstore.ingest._sources import Format, Source, identity_digest

__all__ = [
    "ADVANCE_CURSORS_SQL",
    "REGISTER_FILE_SQL",
    "TRACKED",
    "FileCursor",
    "ResumePoint",
    "load_cursor",
    "statements_for",
]

TRACKED: Final = (
    "price_snapshots",
    "orderbook_snapshots",
    "trades",
    "markets",
    "resolutions",
    "rejects",
)
"""The cursor rows of a file: the five tables, and the rejected payload parts."""

_LENGTHS = "SELECT DISTINCT identity_bytes FROM pmstore_ingest_files WHERE identity_bytes <= %s"

_FIND = """
    SELECT file_id, identity_bytes, format FROM pmstore_ingest_files
    WHERE file_id = ANY(%s) ORDER BY identity_bytes DESC LIMIT 1
"""

_ROWS = """
    SELECT table_name, position, line_number, records FROM pmstore_ingest_cursors
    WHERE file_id = %s
"""

REGISTER_FILE_SQL: Final = """
    INSERT INTO pmstore_ingest_files (file_id, identity_bytes, format, path)
    VALUES (%s, %s, %s, %s)
    ON CONFLICT (file_id) DO UPDATE SET path = EXCLUDED.path, last_seen_at = now()
"""

ADVANCE_CURSORS_SQL: Final = """
    SELECT pmstore_ingest_advance(%s, t, f, e, l, r)
    FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
        AS u(t, f, e, l, r)
"""

Statement = tuple[str, Sequence[Any]]


@dataclass(slots=True)
class FileCursor:
    """Where a file's tables are: position, lines before it and records so far, per table.

    ``known`` is False for a file never seen before (its row is registered
    with its first flush).
    """

    file_id: str
    identity_bytes: int
    format: Format
    path: str
    known: bool
    positions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRACKED, 0))
    lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRACKED, 0))
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRACKED, 0))

    def resume_point(self) -> ResumePoint:
        """Where a run of this file starts reading, as loaded (later moves not included)."""
        table = min(TRACKED, key=lambda t: self.positions[t])  # the least advanced table
        return ResumePoint(
            offset=self.positions[table],
            line=self.lines[table],
            caught_up=max(self.positions.values()),
            positions=dict(self.positions),
        )


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a run starts reading a file, and what a killed run had written past it.

    Reading starts at ``offset`` (``line`` lines before it): the least advanced
    table's position. A killed run may have committed some tables of a segment
    and not others: a record ending at or before ``caught_up`` (the most
    advanced table's position) goes only to the tables whose ``positions`` are
    before it. A file never seen starts at ``ResumePoint()``.
    """

    offset: int = 0
    line: int = 0
    caught_up: int = 0
    positions: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(TRACKED, 0))


def load_cursor(conn: psycopg.Connection[Any], source: Source) -> FileCursor:
    """The cursor of ``source``'s file (a new one when it was never ingested).

    Looks the file up by the digest of its first N bytes for every N a known
    file was registered with (the longest match wins). Leaves ``conn`` idle
    (the read transaction is ended). Raises psycopg errors as they come.
    """
    head = source.identity
    path = str(source.path)
    try:
        lengths = [int(r[0]) for r in conn.execute(_LENGTHS, (len(head),)).fetchall()]
        candidates = [identity_digest(head[:n]) + f":{n}" for n in lengths if n > 0]
        found = conn.execute(_FIND, (candidates,)).fetchone() if candidates else None
        if found is None:
            conn.rollback()
            fmt = source.format
            return FileCursor(identity_digest(head) + f":{len(head)}", len(head), fmt, path, False)
        file_id, identity_bytes, fmt = str(found[0]), int(found[1]), found[2]
        cursor = FileCursor(file_id, identity_bytes, fmt, path, True)
        for table, position, line, records in conn.execute(_ROWS, (file_id,)).fetchall():
            if table in cursor.positions:
                cursor.positions[table] = int(position)
                cursor.lines[table] = int(line)
                cursor.records[table] = int(records)
        conn.rollback()
    except BaseException:
        conn.rollback()
        raise
    return cursor


def statements_for(
    cursor: FileCursor,
    moves: dict[str, tuple[int, int, int]],
    *,
    register: bool,
) -> list[Statement]:
    """The statements that move ``cursor``'s rows: ``moves`` maps a table to
    (new position, lines before it, records added). With ``register`` the
    file's row is inserted (or its path updated) first. Each row must still
    be where ``cursor`` says, or the statement fails (SQLSTATE PM001, see
    the migration). ``commit_moves`` records them in ``cursor`` once committed.
    """
    out: list[Statement] = []
    if register:
        out.append(
            (REGISTER_FILE_SQL, (cursor.file_id, cursor.identity_bytes, cursor.format, cursor.path))
        )
    if moves:
        tables = list(moves)
        out.append(
            (
                ADVANCE_CURSORS_SQL,
                (
                    cursor.file_id,
                    tables,
                    [cursor.positions[t] for t in tables],
                    [moves[t][0] for t in tables],
                    [moves[t][1] for t in tables],
                    [moves[t][2] for t in tables],
                ),
            )
        )
    return out


def commit_moves(cursor: FileCursor, moves: dict[str, tuple[int, int, int]]) -> None:
    """Record in ``cursor`` that ``moves`` were committed."""
    for table, (position, line, records) in moves.items():
        cursor.positions[table] = position
        cursor.lines[table] = line
        cursor.records[table] += records
    cursor.known = True
