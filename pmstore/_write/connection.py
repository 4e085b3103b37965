# generated from pmstore/_write/connection_async.py by scripts/async_to_sync.py: do not edit
"""The connection a Writer works on, and its transactions with reconnect and retry.

Given a DSN, the connection is owned: opened on first use, and when it
drops the whole transaction is retried on a new one, up to ``retries``
times with exponential backoff, then ConnectionLostError. Given a
connection, it is used as is and a drop raises ConnectionLostError at once.
Every psycopg error leaves as a WriteError (or ConnectionLostError) naming
the table, with the server's SQLSTATE and a redacted copy of the cause.
"""

from __future__ import annotations

import logging
from typing import Self, TypeVar

import psycopg

from pmstore._twins import Conn, ConnFunction, sleep
from pmstore._write.connection_base import AlreadyLoggedError, write_failure
from pmstore.dsn import describe, normalize, redact, redact_error
from pmstore.errors import ConfigurationError, ConnectionLostError, WriteError

__all__ = ["WriteConnection"]

logger = logging.getLogger("pmstore.writer")

T = TypeVar("T")


class WriteConnection:
    """An owned (DSN) or given (Connection) connection and its retried transactions.

    The base of ``Writer``: ``connection``, ``backend_pid``, ``close``
    and the context manager are the writer's. Raises ConfigurationError for
    a target that is neither.
    """

    APPLICATION_NAME = "pmstore-writer"
    """``application_name`` of the connections it opens (pg_stat_activity shows it)."""

    def __init__(self, target: str | Conn, *, retries: int, backoff: float) -> None:
        self.retries = retries
        self.backoff = backoff
        self._dsn: str | None
        self._conn: Conn | None
        if isinstance(target, str):
            self._dsn = normalize(target)
            self._conn = None
        elif isinstance(target, psycopg.Connection):
            self._dsn = None
            self._conn = target
        else:
            raise ConfigurationError(
                f"{type(self).__name__} needs a DSN or a psycopg Connection, "
                f"not {type(target).__name__}"
            )

    def __repr__(self) -> str:
        where = describe(self._dsn) if self._dsn is not None else "a given connection"
        return f"{type(self).__name__}({where})"

    # -- connection ----------------------------------------------------------

    def _open(self) -> Conn:
        """A new connection to the DSN; psycopg.OperationalError if refused."""
        assert self._dsn is not None
        return psycopg.Connection.connect(
            self._dsn, autocommit=False, application_name=self.APPLICATION_NAME
        )

    def _connected(self) -> Conn:
        if self._conn is None or (self._conn.closed and self._dsn is not None):
            try:
                self._conn = self._open()
            except psycopg.OperationalError as exc:
                raise write_failure(
                    ConnectionLostError,
                    f"cannot connect to {describe(self._dsn or '')}: {redact(str(exc)).strip()}",
                    None,
                    exc,
                ) from redact_error(exc)
        return self._conn

    @property
    def connection(self) -> Conn:
        """The connection in use (opened on first use when the Writer owns it).

        Raises ConnectionLostError when it cannot be opened.
        """
        return self._connected()

    @property
    def backend_pid(self) -> int:
        """The server process id of the current connection (opened if need be)."""
        conn = self._connected()
        return int(conn.info.backend_pid)

    def close(self) -> None:
        """Close the connection if the Writer opened it (a given one is left open)."""
        if self._dsn is not None and self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the transaction with retries ----------------------------------------

    def _transaction(self, table: str, body: ConnFunction[T]) -> tuple[T, int]:
        """Run ``body`` in one transaction, retrying on connection loss.

        Returns what ``body`` returned and the attempts it took. An
        ``AlreadyLoggedError`` from ``body`` rolls the transaction back and
        leaves, carrying the attempts.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                conn = self._usable_connection()
                with conn.transaction():
                    result = body(conn)
                return result, attempt
            except AlreadyLoggedError as exc:  # the transaction was rolled back
                exc.attempts = attempt
                raise
            except psycopg.OperationalError as exc:
                if self._conn is not None and not (self._conn.closed or self._conn.broken):
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
                if attempt > self.retries:
                    raise write_failure(
                        ConnectionLostError,
                        f"connection to {describe(self._dsn)} lost while writing {table}, "
                        f"gave up after {attempt} attempt(s): {reason}",
                        table,
                        exc,
                    ) from redact_error(exc)
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "connection lost while writing %s (attempt %d of %d), retrying in %.2fs: %s",
                    table,
                    attempt,
                    self.retries + 1,
                    delay,
                    reason,
                )
                self._conn = None
                sleep(delay)
            except psycopg.Error as exc:
                raise write_failure(
                    WriteError, self._describe_error(table, exc), table, exc
                ) from redact_error(exc)

    def _usable_connection(self) -> Conn:
        """The connection, (re)opened when owned; psycopg.OperationalError if it cannot be."""
        if self._dsn is not None and (self._conn is None or self._conn.closed):
            self._conn = None
            self._conn = self._open()
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
