"""What the writers' connection layer shares with the planner above it: how writes fail.

``pmstore._write.connection_async`` (and its generated twin) retries
transactions and turns psycopg errors into pmstore's; ``pmstore.writer_async``
raises ``AlreadyLoggedError`` inside a transaction to roll it back. Both read
these definitions from here, so the connection layer does not depend on the
planner (``pmstore._write.plan``), as psycopg's ``_connection_base`` serves
its connection classes.
"""

from __future__ import annotations

from typing import TypeVar

import psycopg

from pmstore.dsn import redact
from pmstore.errors import WriteError

__all__ = ["AlreadyLoggedError", "write_failure"]


class AlreadyLoggedError(Exception):
    """Raised inside a transaction to roll it back: the batch id was logged meanwhile.

    The connection layer sets ``attempts`` (the tries it took) before it lets the
    error through to the writer, which reports the batch as already written.
    """

    attempts: int = 0


WriteErrorT = TypeVar("WriteErrorT", bound=WriteError)


def write_failure(
    kind: type[WriteErrorT], message: str, table: str | None, exc: psycopg.Error
) -> WriteErrorT:
    """``kind`` carrying ``exc``'s SQLSTATE and redacted primary message.

    Raise it ``from pmstore.dsn.redact_error(exc)``, so the cause is chained
    without the password-bearing connection object.
    """
    primary = exc.diag.message_primary
    return kind(
        message,
        table=table,
        sqlstate=exc.sqlstate,
        message_primary=redact(primary) if primary else None,
    )
