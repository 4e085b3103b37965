"""Planner settings for one read inside the caller's transaction, then put back.

    saved = conn.execute(settings_sql(settings)).fetchone()   # previous values, set
    ... the read ...
    conn.execute(*restore_sql(settings, saved))                # as they were

``set_config(name, value, true)`` lasts until the end of the *transaction*,
not of a savepoint: a read that ran in the caller's transaction would
otherwise leave its settings to the caller's later statements. A read that
fails rolls its savepoint back, which undoes the settings too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Query", "restore_sql", "settings_sql"]

Query = tuple[str, tuple[Any, ...]]
"""A statement and its positional parameters."""


def settings_sql(settings: Mapping[str, str]) -> str:
    """A query returning each setting's current value (columns named after them), then
    setting it to ``settings[name]`` local to the transaction (names and values are
    pmstore's constants, not user input)."""
    current = [f"current_setting('{name}') AS {name}" for name in settings]
    changes = [f"set_config('{name}', '{value}', true)" for name, value in settings.items()]
    return "SELECT " + ", ".join(current + changes)


def restore_sql(settings: Mapping[str, str], saved: Sequence[Any] | None) -> Query:
    """The query (and its parameters) putting back the values ``settings_sql`` returned
    in ``saved``, its row."""
    sql = "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in settings)
    return sql, tuple(saved or ())[: len(settings)]
