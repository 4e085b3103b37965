"""Planner settings for one read inside the caller's transaction, then put back.

    with conn.transaction(), local_settings(conn, settings):   # previous values saved, set
        ... the read ...
    # on leaving the block normally, the settings are as they were

``set_config(name, value, true)`` lasts until the end of the *transaction*,
not of a savepoint: a read that ran in the caller's transaction would
otherwise leave its settings to the caller's later statements. A read that
fails rolls its savepoint back, which undoes the settings too (so nothing is
sent on an error: the transaction is aborted until then).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg

__all__ = ["Query", "local_settings", "local_settings_async", "restore_sql", "settings_sql"]

Query = tuple[str, tuple[Any, ...]]
"""A statement and its positional parameters."""


def settings_sql(settings: Mapping[str, str]) -> str:
    """A query returning each setting's current value (columns named after them), then
    setting it to ``settings[name]`` local to the transaction (names and values are
    pmstore's constants, not user input)."""
    current = [f"current_setting('{name}') AS {name}" for name in settings]
    changes = [f"set_config('{name}', '{value}', true)" for name, value in settings.items()]
    return "SELECT " + ", ".join(current + changes)


def restore_sql(
    settings: Mapping[str, str], saved: Sequence[Any] | Mapping[str, Any] | None
) -> Query:
    """The query (and its parameters) putting back the values ``settings_sql`` returned
    in ``saved``, its row (a tuple, or a dict from a ``dict_row`` cursor)."""
    sql = "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in settings)
    if isinstance(saved, Mapping):
        return sql, tuple(saved[name] for name in settings)
    return sql, tuple(saved or ())[: len(settings)]


@contextmanager
def local_settings(
    conn: psycopg.Connection[Any] | psycopg.Cursor[Any], settings: Mapping[str, str]
) -> Iterator[None]:
    """Set ``settings`` local to the transaction for the block, then put the previous
    values back when it ends normally (an error leaves them to the rollback of the
    caller's savepoint or transaction). Runs on ``conn`` (a connection or a cursor);
    raises psycopg's errors. Costs two small statements."""
    saved = conn.execute(settings_sql(settings)).fetchone()
    yield
    conn.execute(*restore_sql(settings, saved))


@asynccontextmanager
async def local_settings_async(
    conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any], settings: Mapping[str, str]
) -> AsyncIterator[None]:
    """``local_settings`` on an ``AsyncConnection`` or ``AsyncCursor``."""
    saved = await (await conn.execute(settings_sql(settings))).fetchone()
    yield
    await conn.execute(*restore_sql(settings, saved))
