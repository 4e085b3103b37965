"""What the writers' connection layer shares with the planner above it: how writes fail.

``pmstore._write.connection_async`` (and its generated twin) retries
transactions and turns psycopg errors into pmstore's; ``pmstore.writer_async``
raises ``AlreadyLoggedError`` inside a transaction to roll it back. Both read
these definitions from here, so the connection layer does not depend on the
planner (``pmstore._write.plan``), as psycopg's ``_connection_base`` serves
its connection classes. Also here: how an owned connection is opened
(``writer_conninfo``) and which server errors mean "not the primary"
(``READ_ONLY_SQLSTATE``), for both twins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore.dsn import redact
from pmstore.errors import WriteError

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_ONLY_SQLSTATE",
    "AlreadyLoggedError",
    "write_failure",
    "writer_conninfo",
]

CONNECT_TIMEOUT: Final = 10
"""Seconds one connection attempt to one host may take when neither the DSN nor
``PGCONNECT_TIMEOUT`` sets ``connect_timeout``. Without it, an attempt to a host that
drops packets (a dead primary's address) waits 130 s (psycopg's default), longer than the
whole retry budget."""

READ_ONLY_SQLSTATE: Final = "25006"
"""``read_only_sql_transaction``: the server is a hot standby (or a primary being demoted).
An owned connection that meets it is replaced, within the retry budget, as after a loss:
through a load balancer or virtual IP, the next connection reaches the new primary."""


def writer_conninfo(
    dsn: str, application_name: str, environ: Mapping[str, str] | None = None
) -> str:
    """The connection string a writer opens its connections to ``dsn`` with.

    ``dsn`` with ``application_name`` set, and ``connect_timeout`` set to
    ``CONNECT_TIMEOUT`` unless ``dsn`` or the environment's
    ``PGCONNECT_TIMEOUT`` sets one. It holds ``dsn``'s password, if any:
    never show it (``pmstore.dsn.describe`` the DSN instead). Costs one
    parse of ``dsn``.
    """
    env = os.environ if environ is None else environ
    options: dict[str, str | int] = {"application_name": application_name}
    if conninfo_to_dict(dsn).get("connect_timeout") is None and not env.get("PGCONNECT_TIMEOUT"):
        options["connect_timeout"] = CONNECT_TIMEOUT
    return make_conninfo(dsn, **options)


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
