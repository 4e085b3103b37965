"""A panel of several tokens read on several connections at once, in one snapshot.

    table = fetch_parallel(conn, [other, ...], query, values, "arrow")
    table = await fetch_parallel_async(aconn, [aother, ...], query, values, "polars")

The given token ids (in byte order) are cut into one run of consecutive ids
per connection (``token_slices``); each connection reads its run with the
panel's own statement, settings and bulk reader (``pmstore._read.panel``), the
caller's ``conn`` in the calling thread (or task), each other one in a thread
of its own (a task on the event loop); the tables are put end to end, so the
result is the one-connection read's, row for row.

One snapshot for all: ``conn`` exports its transaction's snapshot
(``pg_export_snapshot()``) and each other connection starts a REPEATABLE READ,
READ ONLY transaction on it (``SET TRANSACTION SNAPSHOT``), so every part sees
the same committed rows. ``conn`` must hold that snapshot for its own part
too: when it is idle (autocommit, or outside a transaction) its transaction is
opened here as REPEATABLE READ, READ ONLY; inside a caller's transaction, that
transaction must be REPEATABLE READ or SERIALIZABLE (a READ COMMITTED one takes
a new snapshot per statement) and must not have written yet (an exported
snapshot does not show the exporter's own uncommitted rows to the others):
ConfigurationError otherwise. The read then runs in that transaction, not in
a savepoint (PostgreSQL exports no snapshot from one: a caller inside a
savepoint of its own gets ReadError, sqlstate 0A000, and an aborted
transaction); the read's planner settings are put back after it, or left to
the caller's rollback on an error. The other parts read at REPEATABLE READ in
the same snapshot, without a SERIALIZABLE caller's predicate locks. The other
connections must be idle; their transactions end with the read. A part that
fails does not stop the others: they read to their end, then the first error
is raised.

Costs, beside the parts' reads: the export (one round trip on ``conn``, two
more to open its transaction when idle) and three small statements on each
other connection before its read. Worth it where the server, not the client,
bounds a read (see benchmarks/README.md); one connection's read stays the default.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import psycopg
from psycopg import pq, sql

from pmstore._optional import require
from pmstore._read.bulk import AsyncConn, Conn, read_error
from pmstore._read.panel import PanelQuery, empty, no_rows, read_now, read_now_async
from pmstore._read.settings import local_settings, local_settings_async
from pmstore.dsn import redact_error
from pmstore.errors import ConfigurationError
from pmstore.frames.outbound import FrameKind, to_frame

__all__ = [
    "CALLER_SQL",
    "EXPORT_SNAPSHOT_SQL",
    "IMPORT_SNAPSHOT_SQL",
    "SNAPSHOT_TRANSACTION_SQL",
    "fetch_parallel",
    "fetch_parallel_async",
    "token_slices",
]

SNAPSHOT_TRANSACTION_SQL: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
"""The first statement of a transaction that holds one snapshot for all its statements."""

EXPORT_SNAPSHOT_SQL: Final = "SELECT pg_export_snapshot()"
"""The snapshot of ``conn``'s transaction, by name, for the other connections."""

IMPORT_SNAPSHOT_SQL: Final = "SET TRANSACTION SNAPSHOT {}"
"""Start a transaction on an exported snapshot (the name as a literal)."""

CALLER_SQL: Final = (
    "SELECT current_setting('transaction_isolation'), pg_current_xact_id_if_assigned() IS NULL"
)
"""A caller's transaction: its isolation level, and whether it has written nothing yet."""


def token_slices(ids: Sequence[str], parts: int) -> list[list[str]]:
    """``ids`` cut into at most ``parts`` runs of consecutive ids, none empty, their
    sizes differing by one at most."""
    k = max(1, min(parts, len(ids)))
    size, extra = divmod(len(ids), k)
    runs: list[list[str]] = []
    at = 0
    for i in range(k):
        n = size + (1 if i < extra else 0)
        runs.append(list(ids[at : at + n]))
        at += n
    return runs


def checked_others(conn: Conn | AsyncConn, others: Sequence[Conn | AsyncConn]) -> None:
    """ConfigurationError unless every other connection is idle and none is ``conn``."""
    for other in others:
        if other is conn:
            raise ConfigurationError("a parallel read's other connections must not be conn")
        if other.closed:
            raise ConfigurationError("a parallel read's other connection is closed")
        if other.info.transaction_status != pq.TransactionStatus.IDLE:
            raise ConfigurationError(
                "a parallel read's other connections must be idle (not in a transaction)"
            )


def parts_of(values: Mapping[str, Any], connections: int) -> list[dict[str, Any]]:
    """The parameters of each connection's part: ``values`` with a run of its ids."""
    return [{**values, "token_ids": run} for run in token_slices(values["token_ids"], connections)]


def import_statement(snapshot: str) -> sql.Composed:
    """``IMPORT_SNAPSHOT_SQL`` naming ``snapshot``."""
    return sql.SQL(IMPORT_SNAPSHOT_SQL).format(sql.Literal(snapshot))


def check_caller(row: Any) -> None:
    """ConfigurationError for a caller's transaction (``CALLER_SQL``'s row) whose snapshot
    the parts cannot share: one per statement (READ COMMITTED), or rows it wrote."""
    level, clean = (None, False) if row is None else (str(row[0]), bool(row[1]))
    if level is None or level == "read committed":
        raise ConfigurationError(
            "a parallel read inside a transaction needs it REPEATABLE READ or SERIALIZABLE "
            f"(this one is {level}): its parts must share one snapshot"
        )
    if not clean:
        raise ConfigurationError(
            "a parallel read inside a transaction that has written: the other connections "
            "would not see its uncommitted rows"
        )


def read_part(conn: Conn, query: PanelQuery, values: Mapping[str, Any]) -> Any:
    """One part's rows as a pyarrow Table (the panel's own ``read_now``), in ``conn``'s
    open transaction under the query's settings."""
    settings = query.settings
    with local_settings(conn, settings) if settings else contextlib.nullcontext():
        return read_now(conn, query, values, "arrow")


def read_in_snapshot(
    other: Conn, snapshot: str, query: PanelQuery, values: Mapping[str, Any]
) -> Any:
    """One part read on ``other``, in a transaction on ``snapshot``."""
    with other.transaction():
        other.execute(SNAPSHOT_TRANSACTION_SQL)
        other.execute(import_statement(snapshot))
        return read_part(other, query, values)


def fetch_parallel(
    conn: Conn,
    others: Sequence[Conn],
    query: PanelQuery,
    values: Mapping[str, Any],
    kind: FrameKind,
) -> Any:
    """The panel ``query`` of ``values["token_ids"]`` (several tokens) read on ``conn``
    and ``others`` at once, in ``conn``'s snapshot, as ``kind`` (see the module notes).

    Raises ConfigurationError when another connection is busy or ``conn``'s
    transaction is READ COMMITTED or has written; ReadError for a server error on any
    connection (the others finish or fail first; every transaction opened here
    ends); CopyDecodeError as the one-connection read.
    """
    pa = require("pyarrow")
    checked_others(conn, others)
    if empty(values):
        return no_rows(query, kind)
    parts = parts_of(values, 1 + len(others))
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    try:
        if not idle:  # the caller's own transaction (a snapshot is not exported from a savepoint)
            check_caller(conn.execute(CALLER_SQL).fetchone())
        with conn.transaction() if idle else contextlib.nullcontext():
            if idle:
                conn.execute(SNAPSHOT_TRANSACTION_SQL)
            row = conn.execute(EXPORT_SNAPSHOT_SQL).fetchone()
            snapshot = str(row[0]) if row else ""
            with ThreadPoolExecutor(len(others) or 1, thread_name_prefix="pmstore-part") as pool:
                futures = [
                    pool.submit(read_in_snapshot, other, snapshot, query, part)
                    for other, part in zip(others, parts[1:], strict=False)
                ]
                tables = [read_part(conn, query, parts[0])]
                tables += [future.result() for future in futures]
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)
    return to_frame(pa.concat_tables(tables), kind)


# -- asyncio -------------------------------------------------------------------------------


async def read_part_async(conn: AsyncConn, query: PanelQuery, values: Mapping[str, Any]) -> Any:
    """``read_part`` on an ``AsyncConnection``."""
    settings = query.settings
    async with local_settings_async(conn, settings) if settings else contextlib.nullcontext():
        return await read_now_async(conn, query, values, "arrow")


async def read_in_snapshot_async(
    other: AsyncConn, snapshot: str, query: PanelQuery, values: Mapping[str, Any]
) -> Any:
    """``read_in_snapshot`` on an ``AsyncConnection``."""
    async with other.transaction():
        await other.execute(SNAPSHOT_TRANSACTION_SQL)
        await other.execute(import_statement(snapshot))
        return await read_part_async(other, query, values)


async def fetch_parallel_async(
    conn: AsyncConn,
    others: Sequence[AsyncConn],
    query: PanelQuery,
    values: Mapping[str, Any],
    kind: FrameKind,
) -> Any:
    """``fetch_parallel`` on ``AsyncConnection`` s: the parts are tasks on the event loop
    (their decoding in worker threads); the same statements, checks and errors."""
    pa = require("pyarrow")
    checked_others(conn, others)
    if empty(values):
        return no_rows(query, kind)
    parts = parts_of(values, 1 + len(others))
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    try:
        if not idle:
            check_caller(await (await conn.execute(CALLER_SQL)).fetchone())
        async with conn.transaction() if idle else contextlib.nullcontext():
            if idle:
                await conn.execute(SNAPSHOT_TRANSACTION_SQL)
            row = await (await conn.execute(EXPORT_SNAPSHOT_SQL)).fetchone()
            snapshot = str(row[0]) if row else ""
            reads = [read_part_async(conn, query, parts[0])]
            reads += [
                read_in_snapshot_async(other, snapshot, query, part)
                for other, part in zip(others, parts[1:], strict=False)
            ]
            # every part ends before the exporting transaction does
            results = await asyncio.gather(*reads, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)
    return to_frame(pa.concat_tables(results), kind)
