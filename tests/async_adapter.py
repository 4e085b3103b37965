"""One sync test body for a Writer and an AsyncWriter (a Reader and an AsyncReader).

``Blocking`` runs each coroutine method of an async object to completion on
a private event loop (an ``asyncio.Runner``), so that a test written against
the sync API drives the async class through the same calls. The async
accessors that are properties in the sync classes (``backend_pid``,
``connection``, ``uses_aggregates``) become attributes again.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from pmstore import AsyncReader, AsyncWriter, Writer
from pmstore.reader import Reader

ACCESSORS = frozenset({"backend_pid", "connection", "uses_aggregates"})
"""Properties of the sync classes that the async ones have as coroutine methods."""


class Blocking:
    """A sync face on an async Writer or Reader (see the module docstring)."""

    def __init__(self, runner: asyncio.Runner, target: Any) -> None:
        self._runner = runner
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        if name in ACCESSORS:
            return self._runner.run(attr())
        return lambda *args, **kwargs: self._runner.run(attr(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self._target)

    def close(self) -> None:
        self._runner.run(self._target.aclose())

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Kind:
    """How a test makes writers, readers and connections of one kind (sync or async)."""

    def __init__(self, name: str, runner: asyncio.Runner) -> None:
        self.name = name
        self.runner = runner

    @property
    def is_async(self) -> bool:
        return self.name == "async"

    def writer(self, target: Any, **options: Any) -> Any:
        """A Writer, or a Blocking AsyncWriter, on a DSN or a connection of ``connect``."""
        if self.is_async:
            return Blocking(self.runner, AsyncWriter(target, **options))
        return Writer(target, **options)

    def reader(self, conn: Any, **options: Any) -> Any:
        if self.is_async:
            return Blocking(self.runner, AsyncReader(conn, **options))
        return Reader(conn, **options)

    def connect(self, dsn: str, **options: Any) -> Any:
        """A psycopg Connection, or an AsyncConnection on this kind's event loop."""
        if self.is_async:
            return self.runner.run(psycopg.AsyncConnection.connect(dsn, **options))
        return psycopg.connect(dsn, **options)

    def close(self, conn: Any) -> None:
        if self.is_async:
            self.runner.run(conn.close())
        else:
            conn.close()

    def run(self, call: Callable[[], Any]) -> Any:
        """``call()``, awaited when it returns a coroutine."""
        result = call()
        return self.runner.run(result) if inspect.iscoroutine(result) else result


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> Iterator[Kind]:
    """Each test using it runs twice: on Writer/Reader, and on AsyncWriter/AsyncReader."""
    with asyncio.Runner() as runner:
        yield Kind(request.param, runner)


@pytest.fixture
def make_reader(kind: Kind, db: str) -> Iterator[Callable[..., Any]]:
    """``make_reader(**options)``: a Reader or a Blocking AsyncReader (per ``kind``) on
    ``db``, over one autocommit connection of its kind closed after the test."""
    own = kind.connect(db, autocommit=True)
    try:
        yield lambda **options: kind.reader(own, **options)
    finally:
        kind.close(own)
