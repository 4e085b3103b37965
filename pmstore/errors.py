"""pmstore's error hierarchy: every error pmstore raises on purpose is a PmstoreError.

    PmstoreError
    ├── ConfigurationError        bad DSN, option, argument or environment (also a ValueError)
    ├── ServerError               the embedded server cannot be found, set up or started
    ├── MigrationError            a migration failed
    │   ├── MigrationLockError    another (or a killed) process holds yoyo's lock
    │   └── MigrationDriftError   applied migrations whose files changed since
    ├── BatchValidationError      bad input: rows and columns named, nothing written
    ├── PayloadError              a Polymarket payload cannot be converted (the reason says why)
    ├── IngestError               ``pmstore ingest``'s reader process ended without a word
    ├── WriteError                a batch could not be written (nothing was written)
    │   └── ConnectionLostError   the connection dropped and could not be replaced
    ├── FeatureUnavailableError   the server's TimescaleDB edition lacks a feature
    ├── CopyDecodeError           binary COPY bytes that do not decode as the expected columns
    ├── ReadError                 the server failed a bulk read (its sqlstate kept)
    ├── WaitTimeoutError          a wait for a condition ran out of time (also a TimeoutError)
    └── RecorderError             ``pmstore record`` had to stop (its archive cannot be written)

``ConfigurationError``, ``BatchValidationError``, ``PayloadError`` and
``CopyDecodeError`` are also ``ValueError`` s.

Messages never contain passwords: DSNs are shown through ``pmstore.dsn.redact``,
and a chained psycopg error is a redacted copy (``pmstore.dsn.redact_error``).

Every error pickles with its fields (one Writer per process is the recommended
use, so errors cross process boundaries); the cause chain is not pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class PmstoreError(Exception):
    """Base class of every error pmstore raises on purpose.

    Pickles with every field, whatever a subclass's ``__init__`` takes: the
    copy is rebuilt from ``args`` and the instance's attributes, without
    calling ``__init__`` again.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls: type[PmstoreError], args: tuple[Any, ...]) -> PmstoreError:
    """Unpickle: a bare ``cls`` holding ``args``; pickle then restores its attributes."""
    return cls.__new__(cls, *args)


class ConfigurationError(PmstoreError, ValueError):
    """A DSN, option, argument or environment setting is missing or invalid.

    Also a ValueError: a bad argument is one.
    """


class ServerError(PmstoreError):
    """The embedded TimescaleDB server cannot be found, initialised or started."""


class MigrationError(PmstoreError):
    """Applying or rolling back a migration failed."""


class MigrationLockError(MigrationError):
    """yoyo's migration lock is held by another process, or was left by a killed one."""


class MigrationDriftError(MigrationError):
    """Applied migrations whose files changed since they were applied (``migrations``: ids)."""

    def __init__(self, message: str, migrations: Sequence[str] = ()):
        super().__init__(message)
        self.migrations = tuple(migrations)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One reason a row was rejected: its index in the batch, the column and why.

    ``row`` is None for a problem of the whole column (missing, extra, wrong
    type, wrong length).
    """

    row: int | None
    column: str
    reason: str

    def __str__(self) -> str:
        where = "batch" if self.row is None else f"row {self.row}"
        return f"{where}, column {self.column!r}: {self.reason}"


class BatchValidationError(PmstoreError, ValueError):
    """A batch holds invalid rows; nothing was written.

    ``problems`` lists the first offending rows as (row index, column, reason);
    ``total`` counts every problem found (it can exceed ``len(problems)``).
    """

    def __init__(self, table: str, problems: Sequence[RowProblem], total: int | None = None):
        self.table = table
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        shown = "; ".join(str(p) for p in self.problems[:10])
        more = self.total - min(len(self.problems), 10)
        suffix = f" (and {more} more)" if more > 0 else ""
        super().__init__(
            f"invalid {table} batch, nothing written: {self.total} problem(s): {shown}{suffix}"
        )


class PayloadError(PmstoreError, ValueError):
    """A Polymarket API payload cannot be converted into pmstore records.

    ``reason`` says exactly why (e.g. a missing required field, named);
    ``kind`` is the payload kind when it was recognised.
    """

    def __init__(self, reason: str, kind: str | None = None):
        self.reason = reason
        self.kind = kind
        super().__init__(f"{kind}: {reason}" if kind else reason)


class IngestError(PmstoreError):
    """``pmstore ingest`` could not go on for a reason that is neither a payload nor a write:
    its reader process ended without a word (killed, out of memory), or failed with an
    error that cannot be passed back. What was committed stays committed: run again."""


class WriteError(PmstoreError):
    """A batch could not be written; its transaction was rolled back.

    ``table`` is the table written; ``sqlstate`` the server's SQLSTATE code
    (e.g. ``"23505"``; None when the failure had none, such as a refused
    connection) and ``message_primary`` its primary message, passwords
    redacted. The psycopg error is chained as ``__cause__`` (a redacted copy).
    """

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        sqlstate: str | None = None,
        message_primary: str | None = None,
    ):
        super().__init__(message)
        self.table = table
        self.sqlstate = sqlstate
        self.message_primary = message_primary


class ConnectionLostError(WriteError):
    """The connection was lost and could not be replaced (or retries ran out).

    The batch is not half-written: its transaction either committed (a retry
    with the same batch id writes nothing) or rolled back.
    """


class FeatureUnavailableError(PmstoreError):
    """The server's TimescaleDB edition lacks a feature (e.g. the Apache-2 edition)."""


class CopyDecodeError(PmstoreError, ValueError):
    """Bytes of a binary ``COPY ... TO`` stream (or coverage's packed timestamps) do not
    decode as the expected columns.

    A bug or a wrong schema for the query, not bad user input (the message says which).
    """


class ReadError(PmstoreError):
    """The server failed a bulk read (a binary COPY of a query's rows), before or mid-stream.

    ``sqlstate`` is the server's SQLSTATE code (e.g. ``"57014"`` for a statement
    timeout; None when the failure had none, such as a dropped connection) and
    ``message_primary`` its primary message, passwords redacted. The psycopg
    error is chained as ``__cause__`` (a redacted copy).
    """

    def __init__(
        self, message: str, *, sqlstate: str | None = None, message_primary: str | None = None
    ):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message_primary = message_primary


class WaitTimeoutError(PmstoreError, TimeoutError):
    """A wait for a condition (e.g. ``Simulator.wait_for``) ran out of time; the message
    names what was awaited."""


class RecorderError(PmstoreError):
    """The live recorder had to stop: its raw archive cannot be written (disk full, file
    too large, permissions), so nothing more can be recorded without losing data silently.

    ``path`` is the archive file (or directory) concerned. The records written before
    stay in the archive (a ``.part`` file is closed by the next run) and in the database.
    """

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path
