"""A query's rows as Arrow record batches, read from binary COPY in bulk.

    for batch in iter_batches(conn, sql, params, schema): ...     # pyarrow.RecordBatch
    table = read_table(conn, sql, params, schema)                  # pyarrow.Table
    table = await read_table_async(aconn, sql, params, schema)     # on an AsyncConnection

The query runs as ``COPY (sql) TO STDOUT (FORMAT binary)`` on the caller's
connection, in the caller's transaction: psycopg starts it (binding ``params``
on the client, as COPY needs, and opening a transaction where psycopg would),
then the CopyData messages are taken straight from libpq into a
``bytearray`` and an array of message sizes, instead of through psycopg's
``Copy`` (a chain of generator calls per message, which bounded the old path
at ~0.4x of the server's own ``COPY TO`` file): by the compiled loop
(``pmstore._copydata``, ``PQgetCopyData`` in C with the GIL released;
``pmstore._read.libpq`` finds and checks the libpq) where pmstore was built
with it, else by the same loop in Python (``psycopg.pq``'s ``get_copy_data``).
Every ``batch_rows`` messages the bytes go to ``CopyDecoder.decode_messages``
(numpy over whole columns) in one worker thread, while the loop reads on:
decoding overlaps the transfer. A result of
one batch or less is decoded in the calling thread (no thread started).

The columns' types are given (``schema``), not asked of the server: one round
trip per read. ``pmstore._read.panel`` declares them beside each query, and a
test checks them against the server's description.

The end of the stream: the binary trailer comes as a message of its own
(what servers send); reading stops there and psycopg's ``Copy.read`` takes
the end (the final result, its error if any, the connection's state). When
the stream ends without a trailer message (an error mid-stream, e.g. a
statement timeout or a conflict with recovery on a standby), the results are
fetched here. Every server error (at the start, e.g. a bad query, or
mid-stream) is raised as ``pmstore.errors.ReadError`` carrying the server's
``sqlstate``, with a redacted copy of psycopg's error as its cause. Decoding
errors raise CopyDecodeError; the COPY is then cancelled by psycopg as for any
error inside its block.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import struct
from array import array
from collections import deque
from collections.abc import AsyncGenerator, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import psycopg
from psycopg import pq
from psycopg.errors import error_from_result

from pmstore._optional import require
from pmstore._pgcopy import PGCOPY_HEADER_FIXED, PGCOPY_TRAILER, copy_statement
from pmstore._read.libpq import STOP_ENDED, STOP_FAILED, STOP_TRAILER, STOP_WAIT, compiled_loop
from pmstore.dsn import redact, redact_error
from pmstore.errors import ConfigurationError, CopyDecodeError, ReadError
from pmstore.frames.copy_decoding import CopyDecoder

__all__ = [
    "MAX_PENDING_BATCHES",
    "READ_BATCH_ROWS",
    "copy_batches",
    "copy_batches_async",
    "iter_batches",
    "iter_batches_async",
    "read_error",
    "read_table",
    "read_table_async",
    "require_utf8",
]

READ_BATCH_ROWS: Final = 16_384
"""Messages (rows) per decoded batch: ~2 MB of price rows, decoded while still in the
CPU's cache (measured: 16,384 and 8,192 kept pace with the server, 65,536 did not)."""

MAX_PENDING_BATCHES: Final = 2
"""Batches received but not yet decoded before the reading waits for the decoder."""

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


def read_error(exc: psycopg.Error) -> ReadError:
    """The ReadError of a psycopg error from a bulk read (raise it ``from
    redact_error(exc)``): the server's sqlstate and primary message, redacted."""
    primary = exc.diag.message_primary
    return ReadError(
        f"bulk read failed: {redact(str(exc)).strip()}",
        sqlstate=exc.sqlstate,
        message_primary=None if primary is None else redact(primary),
    )


def require_utf8(conn: Conn | AsyncConn) -> None:
    """ConfigurationError unless the connection's client encoding is UTF-8 (text is
    read as the server sends it)."""
    if conn.info.encoding.replace("-", "").replace("_", "").lower() != "utf8":
        raise ConfigurationError(
            f"bulk reads need a UTF-8 connection, this one is {conn.info.encoding}"
        )


@dataclass(slots=True)
class Received:
    """Messages of one batch: their bytes back to back, their sizes, how the stream stood."""

    data: bytearray = field(default_factory=bytearray)
    sizes: array[int] = field(default_factory=lambda: array("q"))
    """As machine int64s: numpy reads them in place (a list would be converted)."""
    trailer: bool = False
    """The trailer message was read: the COPY's end is left to psycopg."""
    ended: bool = False
    """libpq reported the end of the COPY data (-1) before a trailer message."""

    @property
    def last(self) -> bool:
        """No message follows this batch's."""
        return self.trailer or self.ended


def whole_stream(message: bytes | memoryview) -> bool:
    """Whether the stream's first message is the header followed by the trailer
    (an empty result); CopyDecodeError for a message too short to hold the header."""
    if len(message) < PGCOPY_HEADER_FIXED:
        raise CopyDecodeError("not a binary COPY stream (a first message without a header)")
    (extension,) = struct.unpack_from(">i", message, PGCOPY_HEADER_FIXED - 4)
    return (
        len(message) == PGCOPY_HEADER_FIXED + extension + 2
        and bytes(message[-2:]) == PGCOPY_TRAILER
    )


class CopyStream:
    """The CopyData messages of one ``COPY ... TO STDOUT (FORMAT binary)``, taken from libpq.

    ``take`` never blocks: it moves the messages libpq holds into a batch and
    says when none is ready; the caller then waits for the socket (sync or
    async), calls ``pgconn.consume_input()`` and takes again.
    """

    def __init__(self, pgconn: pq.abc.PGconn, *, compiled: bool = True) -> None:
        self.pgconn = pgconn
        self.first = True
        self.loop = compiled_loop(pgconn) if compiled else None
        """The compiled loop, when built and bound to this connection's libpq (else the
        Python loop below takes the messages; ``compiled=False`` asks for it)."""

    def take(self, batch: Received, limit: int) -> bool:
        """Move ready messages into ``batch`` until it holds ``limit`` or the stream's
        last; return True when it stopped because no message was ready."""
        remaining = limit - len(batch.sizes)
        if self.first and remaining > 0:
            if self.take_first(batch) or batch.last:
                return self.first
            remaining -= 1
        if self.loop is not None and self.loop.usable:
            return self.take_compiled(batch, remaining)
        get = self.pgconn.get_copy_data
        data, sizes = batch.data, batch.sizes
        add = sizes.append
        while remaining > 0:
            nbytes, message = get(1)
            if nbytes > 0:
                data += message
                add(nbytes)
                remaining -= 1
                if nbytes == 2 and bytes(message) == PGCOPY_TRAILER:  # a message of its own
                    batch.trailer = True
                    return False
            elif nbytes == 0:
                return True
            else:  # -1: the COPY data ended (-2 is raised by get_copy_data)
                batch.ended = True
                return False
        return False

    def take_first(self, batch: Received) -> bool:
        """Take the stream's first message (the header, maybe the whole stream); return
        True when none is ready."""
        nbytes, message = self.pgconn.get_copy_data(1)
        if nbytes == 0:
            return True
        self.first = False
        if nbytes < 0:
            batch.ended = True
            return False
        batch.data += message
        batch.sizes.append(nbytes)
        if whole_stream(message):
            batch.trailer = True
        return False

    def take_compiled(self, batch: Received, remaining: int) -> bool:
        """``take``'s loop in C (``pmstore._copydata``)."""
        assert self.loop is not None
        sizes = bytearray()
        _, stop = self.loop.take(batch.data, sizes, remaining)
        batch.sizes.frombytes(sizes)
        if stop == STOP_TRAILER:
            batch.trailer = True
        elif stop == STOP_ENDED:
            batch.ended = True
        elif stop == STOP_FAILED:  # -2, as psycopg's get_copy_data raises it
            message = self.pgconn.get_error_message()
            raise psycopg.OperationalError(f"receiving copy data failed: {message}")
        return stop == STOP_WAIT


def decode(decoder: CopyDecoder, batch: Received) -> Any:
    """The batch's rows as a ``pyarrow.RecordBatch`` (the decoder's state advances)."""
    return decoder.decode_messages(batch.data, np.frombuffer(batch.sizes, dtype=np.int64))


def raise_error(results: list[pq.abc.PGresult], encoding: str) -> None:
    """Raise the server's error among a COPY's final results, as psycopg raises it."""
    for result in results:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise error_from_result(result, encoding=encoding)


class SocketWait:
    """Blocks until a connection's socket is readable (a selector; ``close`` it)."""

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self.selector = selectors.DefaultSelector()
        self.selector.register(pgconn.socket, selectors.EVENT_READ)

    def __call__(self) -> None:
        self.selector.select()

    def close(self) -> None:
        self.selector.close()


def receive(stream: CopyStream, limit: int, wait: SocketWait) -> Received:
    """The next batch of up to ``limit`` messages, waiting for them as needed."""
    batch = Received()
    while stream.take(batch, limit):
        wait()
        stream.pgconn.consume_input()
    return batch


def final_results(pgconn: pq.abc.PGconn, wait: SocketWait) -> list[pq.abc.PGresult]:
    """The results that follow the end of the COPY data (libpq's -1)."""
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            wait()
            pgconn.consume_input()
        if (result := pgconn.get_result()) is None:
            return results
        results.append(result)


def checked(batch_rows: int) -> int:
    """``batch_rows`` if a positive int, else ConfigurationError."""
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ConfigurationError(f"batch_rows must be a positive integer, not {batch_rows!r}")
    return batch_rows


def iter_batches(
    conn: Conn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> Generator[Any, None, None]:
    """Yield the rows of ``sql`` as ``pyarrow.RecordBatch`` es of ``schema``, in order.

    Runs in the caller's transaction (see the module notes). Holds at most
    ``MAX_PENDING_BATCHES`` + 2 batches of bytes at a time, whatever the
    result's size. Closing the iterator early cancels the COPY (psycopg).
    Raises ConfigurationError when pyarrow is missing, the connection is not
    UTF-8 or ``batch_rows`` is not positive; ReadError (with the sqlstate)
    when the server fails the query; CopyDecodeError for bytes not matching
    ``schema``. Empty batches are not yielded.
    """
    try:
        yield from copy_batches(conn, sql, params, schema, batch_rows=batch_rows)
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)


def copy_batches(
    conn: Conn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> Generator[Any, None, None]:
    """``iter_batches`` with the server's errors as psycopg raises them (same class and
    ``sqlstate``), for callers that handle psycopg's errors themselves."""
    require("pyarrow")
    require_utf8(conn)
    limit = checked(batch_rows)
    decoder = CopyDecoder(schema)
    with contextlib.ExitStack() as stack:
        cur = stack.enter_context(conn.cursor())
        copy = stack.enter_context(cur.copy(copy_statement(sql), params))
        stream = CopyStream(conn.pgconn)
        wait = SocketWait(stream.pgconn)
        stack.callback(wait.close)
        executor: ThreadPoolExecutor | None = None
        pending: deque[Future[Any]] = deque()
        while True:
            batch = receive(stream, limit, wait)
            last = batch.last
            if batch.ended:
                raise_error(final_results(stream.pgconn, wait), conn.info.encoding)
            elif batch.trailer and copy.read():
                raise CopyDecodeError("data after the COPY stream's trailer")
            if last and executor is None:  # the whole result in one batch: decoded here
                if (rows := decode(decoder, batch)).num_rows:
                    yield rows
                break
            if executor is None:
                executor = stack.enter_context(
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmstore-decode")
                )
            pending.append(executor.submit(decode, decoder, batch))
            del batch  # the decoder holds the bytes now
            while pending and (last or len(pending) > MAX_PENDING_BATCHES or pending[0].done()):
                if (rows := pending.popleft().result()).num_rows:
                    yield rows
            if last:
                break
    decoder.finish()


def read_table(
    conn: Conn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> Any:
    """The rows of ``sql`` as one ``pyarrow.Table`` of ``schema`` (see ``iter_batches``).

    Same errors; memory: the result, plus up to 4 batches of bytes while reading.
    """
    pa = require("pyarrow")
    batches = list(iter_batches(conn, sql, params, schema, batch_rows=batch_rows))
    return pa.Table.from_batches(batches, schema=schema)


# -- asyncio -------------------------------------------------------------------------------


class AsyncSocketWait:
    """Awaits a connection's socket being readable, on the running event loop."""

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self.fileno = pgconn.socket
        self.loop = asyncio.get_running_loop()

    async def __call__(self) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()
        self.loop.add_reader(self.fileno, ready.set_result, None)
        try:
            await ready
        finally:
            self.loop.remove_reader(self.fileno)


async def receive_async(stream: CopyStream, limit: int, wait: AsyncSocketWait) -> Received:
    """``receive`` on the event loop: awaits the socket instead of blocking."""
    batch = Received()
    while stream.take(batch, limit):
        await wait()
        stream.pgconn.consume_input()
    return batch


async def final_results_async(
    pgconn: pq.abc.PGconn, wait: AsyncSocketWait
) -> list[pq.abc.PGresult]:
    """``final_results`` on the event loop."""
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            await wait()
            pgconn.consume_input()
        if (result := pgconn.get_result()) is None:
            return results
        results.append(result)


async def iter_batches_async(
    conn: AsyncConn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> AsyncGenerator[Any, None]:
    """``iter_batches`` on an ``AsyncConnection``: the same statement, batches and errors.

    The event loop is held for one take of the messages libpq holds (bounded
    by ``batch_rows``) at a time; every batch is decoded in a worker thread.
    """
    try:
        async for batch in copy_batches_async(conn, sql, params, schema, batch_rows=batch_rows):
            yield batch
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)


async def copy_batches_async(
    conn: AsyncConn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> AsyncGenerator[Any, None]:
    """``iter_batches_async`` with the server's errors as psycopg raises them."""
    require("pyarrow")
    require_utf8(conn)
    limit = checked(batch_rows)
    decoder = CopyDecoder(schema)
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        cur = await stack.enter_async_context(conn.cursor())
        copy = await stack.enter_async_context(cur.copy(copy_statement(sql), params))
        stream = CopyStream(conn.pgconn)
        wait = AsyncSocketWait(stream.pgconn)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmstore-decode")
        # never wait on the event loop for a decode when cancelled or failing
        stack.callback(executor.shutdown, wait=False, cancel_futures=True)
        pending: deque[asyncio.Future[Any]] = deque()
        while True:
            batch = await receive_async(stream, limit, wait)
            last = batch.last
            if batch.ended:
                raise_error(await final_results_async(stream.pgconn, wait), conn.info.encoding)
            elif batch.trailer and await copy.read():
                raise CopyDecodeError("data after the COPY stream's trailer")
            pending.append(loop.run_in_executor(executor, decode, decoder, batch))
            del batch
            while pending and (last or len(pending) > MAX_PENDING_BATCHES or pending[0].done()):
                if (rows := await pending.popleft()).num_rows:
                    yield rows
            if last:
                break
    decoder.finish()


async def read_table_async(
    conn: AsyncConn,
    sql: str,
    params: Mapping[str, Any],
    schema: Any,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> Any:
    """``read_table`` on an ``AsyncConnection`` (see ``iter_batches_async``)."""
    pa = require("pyarrow")
    batches = [
        b async for b in iter_batches_async(conn, sql, params, schema, batch_rows=batch_rows)
    ]
    return pa.Table.from_batches(batches, schema=schema)
