"""The connection an AsyncWriter works on, and its transactions with reconnect and retry.

Given a DSN, the connection is owned: opened on first use (with
``connection_base.writer_conninfo``), and when it drops, or the server turns
out read-only (a standby, through a load balancer or an address that moved),
the whole transaction is retried on a new one while the retry budget lasts
(``pmstore._write.retry``), then ConnectionLostError. A multi-host DSN with
``target_session_attrs=read-write`` makes every new connection find the
primary (libpq tries the hosts in turn; psycopg makes one attempt per host).
Given a connection, it is used as is and a drop raises ConnectionLostError at
once. Every psycopg error leaves as a WriteError (or ConnectionLostError)
naming the table, with the server's SQLSTATE and a redacted copy of the cause.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Self, TypeVar

import psycopg

from pmstore._twins import AsyncConn, AsyncConnFunction, async_sleep
from pmstore._write.connection_base import (
    READ_ONLY_SQLSTATE,
    AlreadyLoggedError,
    write_failure,
    writer_conninfo,
)
from pmstore._write.retry import RetryBudget
from pmstore.dsn import describe, normalize, redact, redact_error
from pmstore.errors import ConfigurationError, ConnectionLostError, WriteError

__all__ = ["AsyncWriteConnection"]

logger = logging.getLogger("pmstore.writer_async")

T = TypeVar("T")


class AsyncWriteConnection:
    """An owned (DSN) or given (AsyncConnection) connection and its retried transactions.

    The base of ``AsyncWriter``: ``connection``, ``backend_pid``, ``aclose``
    and the context manager are the writer's; ``retry_budget`` says how long
    a transaction is retried. Raises ConfigurationError for a target that is
    neither.
    """

    APPLICATION_NAME = "pmstore-writer"
    """``application_name`` of the connections it opens (pg_stat_activity shows it)."""

    def __init__(self, target: str | AsyncConn, *, retry_budget: RetryBudget) -> None:
        self.retry_budget = retry_budget
        self._jitter = random.Random()  # the waits' jitter; not the process's generator
        self._dsn: str | None
        self._conn: AsyncConn | None
        self._conninfo = ""  # the DSN with the writer's connection options (password included)
        if isinstance(target, str):
            self._dsn = normalize(target)
            self._conninfo = writer_conninfo(self._dsn, self.APPLICATION_NAME)
            self._conn = None
        elif isinstance(target, psycopg.AsyncConnection):
            self._dsn = None
            self._conn = target
        else:
            raise ConfigurationError(
                f"{type(self).__name__} needs a DSN or a psycopg AsyncConnection, "
                f"not {type(target).__name__}"
            )

    def __repr__(self) -> str:
        where = describe(self._dsn) if self._dsn is not None else "a given connection"
        return f"{type(self).__name__}({where})"

    # -- connection ----------------------------------------------------------

    async def _open(self) -> AsyncConn:
        """A new connection to the DSN; psycopg.OperationalError if refused."""
        assert self._dsn is not None
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=False)

    async def _connected(self) -> AsyncConn:
        if self._conn is None or (self._conn.closed and self._dsn is not None):
            try:
                self._conn = await self._open()
            except psycopg.OperationalError as exc:
                raise write_failure(
                    ConnectionLostError,
                    f"cannot connect to {describe(self._dsn or '')}: {redact(str(exc)).strip()}",
                    None,
                    exc,
                ) from redact_error(exc)
        return self._conn

    # sync: @property
    async def connection(self) -> AsyncConn:
        """The connection in use (opened on first use when the AsyncWriter owns it).

        Raises ConnectionLostError when it cannot be opened.
        """
        return await self._connected()

    # sync: @property
    async def backend_pid(self) -> int:
        """The server process id of the current connection (opened if need be)."""
        conn = await self._connected()
        return int(conn.info.backend_pid)

    async def aclose(self) -> None:
        """Close the connection if the AsyncWriter opened it (a given one is left open)."""
        if self._dsn is not None and self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the transaction with retries ----------------------------------------

    async def _transaction(self, table: str, body: AsyncConnFunction[T]) -> tuple[T, int]:
        """Run ``body`` in one transaction, retrying on connection loss or a read-only server.

        Returns what ``body`` returned and the attempts it took. Retries
        while ``retry_budget`` lasts, counted from the first failure. An
        ``AlreadyLoggedError`` from ``body`` rolls the transaction back and
        leaves, carrying the attempts.
        """
        attempt = 0
        first_failure: float | None = None
        while True:
            attempt += 1
            try:
                conn = await self._usable_connection()
                async with conn.transaction():
                    result = await body(conn)
                return result, attempt
            except AlreadyLoggedError as exc:  # the transaction was rolled back
                exc.attempts = attempt
                raise
            except psycopg.Error as exc:
                lost = isinstance(exc, psycopg.OperationalError) and (
                    self._conn is None or self._conn.closed or self._conn.broken
                )
                read_only = exc.sqlstate == READ_ONLY_SQLSTATE and self._dsn is not None
                if not (lost or read_only):
                    raise write_failure(
                        WriteError, self._describe_error(table, exc), table, exc
                    ) from redact_error(exc)
                reason = redact(str(exc)).strip()
                if self._dsn is None:
                    raise write_failure(
                        ConnectionLostError,
                        f"connection lost while writing {table}; the {type(self).__name__} was "
                        f"given this connection and cannot replace it: {reason}",
                        table,
                        exc,
                    ) from redact_error(exc)
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                failed_for = now - first_failure
                wait = self.retry_budget.wait(attempt, failed_for, self._jitter.random())
                what = (
                    f"connection to {describe(self._dsn)} lost"
                    if lost
                    else f"{describe(self._dsn)} is read-only (a hot standby?)"
                )
                if wait is None:
                    hint = (
                        ""
                        if lost
                        else "; to follow the primary, list every server in the DSN with "
                        "target_session_attrs=read-write"
                    )
                    raise write_failure(
                        ConnectionLostError,
                        f"{what} while writing {table}, gave up after {attempt} attempt(s) "
                        f"in {failed_for:.1f} s (retry budget: {self.retry_budget}){hint}: "
                        f"{reason}",
                        table,
                        exc,
                    ) from redact_error(exc)
                budget = self.retry_budget
                of = "" if budget.retries is None else f" of {budget.retries + 1}"
                left = budget.retry_for
                left_text = "" if left is None else f", {left - failed_for:.1f} s left"
                logger.warning(
                    "%s while writing %s (attempt %d%s%s), retrying in %.2fs: %s",
                    what,
                    table,
                    attempt,
                    of,
                    left_text,
                    wait,
                    reason,
                )
                await self._discard()
                await async_sleep(wait)

    async def _discard(self) -> None:
        """Close the owned connection (lost, or read-only) so that the next attempt opens one."""
        if self._conn is not None:
            await self._conn.close()
        self._conn = None

    async def _usable_connection(self) -> AsyncConn:
        """The connection, (re)opened when owned; psycopg.OperationalError if it cannot be."""
        if self._dsn is not None and (self._conn is None or self._conn.closed):
            self._conn = None
            self._conn = await self._open()
        assert self._conn is not None
        if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise ConfigurationError(
                f"the {type(self).__name__}'s connection is inside a transaction: "
                "commit or roll back before writing (each call commits)"
            )
        return self._conn

    def _describe_error(self, table: str, exc: psycopg.Error) -> str:
        state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
        return f"writing {table} failed, nothing written{state}: {redact(str(exc)).strip()}"
