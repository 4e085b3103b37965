"""The calls whose async and sync forms differ, in pairs: async first, its sync twin after.

``pmstore.writer_async`` and ``pmstore.reader_async`` are the source of
``pmstore.writer`` and ``pmstore.reader``: ``scripts/async_to_sync.py``
removes ``async``/``await`` and renames each async name here to its twin
(its ``RENAMES`` table: ``offload`` -> ``call_inline``, ``async_sleep`` ->
``sleep``, ``AsyncConnFunction`` -> ``ConnFunction``). Nothing else differs.

A second, smaller mechanism: a few functions outside the generated modules
are written by hand in both forms, side by side, and mapped by the same
``RENAMES``: ``pmstore.edition.features_async`` / ``features`` and
``require_feature_async`` / ``require_feature``, ``pmstore._read.coverage.coverage_async``
/ ``coverage``, ``pmstore.frames.outbound.fetch_frame_async`` / ``fetch_frame``,
``pmstore._read.settings.local_settings_async`` / ``local_settings`` (a generator
input for a few lines each would cost more than the pairs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import psycopg

__all__ = [
    "AsyncConn",
    "AsyncConnFunction",
    "Conn",
    "ConnFunction",
    "async_sleep",
    "call_inline",
    "offload",
    "sleep",
]

T = TypeVar("T")
P = ParamSpec("P")

AsyncConn = psycopg.AsyncConnection[Any]
"""The async connection the writers and readers work on."""
Conn = psycopg.Connection[Any]
"""``AsyncConn``'s sync twin."""
AsyncConnFunction = Callable[[AsyncConn], Awaitable[T]]
"""An async function of a connection (e.g. the body of a Writer transaction)."""
ConnFunction = Callable[[Conn], T]
"""``AsyncConnFunction``'s sync twin."""


async def offload(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``function(*args, **kwargs)`` in a worker thread, off the event loop.

    For CPU work: costs a thread hop (~50 µs), so use it for work of a
    millisecond or more. Exceptions propagate as raised.
    """
    return await asyncio.to_thread(function, *args, **kwargs)


def call_inline(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``offload``'s sync twin: run ``function(*args, **kwargs)`` here and now."""
    return function(*args, **kwargs)


async def async_sleep(seconds: float) -> None:
    """Wait ``seconds`` without blocking the event loop (reconnect backoff)."""
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    """``async_sleep``'s sync twin: block for ``seconds``."""
    time.sleep(seconds)
