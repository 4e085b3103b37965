"""Ground truth: the facts the simulator observed, listeners, and waiting on a condition."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pmstore.errors import WaitTimeoutError

__all__ = ["Fact", "FactKind", "Journal", "ServedRequest"]

log = logging.getLogger("pmstore.simulator")

FactKind = Literal[
    "handshake_rejected",
    "connected",
    "subscribed",
    "invalid_subscription",
    "operation",
    "invalid_operation",
    "ping",
    "closed",
    "request",
    "maintenance",
]
"""What a :class:`Fact` records:

- ``handshake_rejected``: a WebSocket handshake got HTTP 429 (no connection);
- ``connected``: a socket completed its handshake;
- ``subscribed``: its first frame was a valid subscription (``detail``: asset count);
- ``invalid_subscription``: its first frame was not one, or none came: closed 1008;
- ``operation``: a ``subscribe``/``unsubscribe`` frame was applied (``detail``: it);
- ``invalid_operation``: a frame got the text ``INVALID OPERATION``;
- ``ping``: a text ``PING`` was received (and ``PONG`` queued);
- ``closed``: the socket is gone (``detail``: the close code and reason);
- ``request``: a REST request was served (``detail``: method, path, status);
- ``maintenance``: a maintenance silence began or ended.
"""


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing the simulator observed, in order (``seq`` counts from 0)."""

    seq: int
    kind: FactKind
    connection_id: int | None
    detail: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """A REST request and the response the simulator gave (``body`` is the response text,
    kept when frames are recorded)."""

    seq: int
    method: str
    path: str
    query: str
    status: int
    items: int
    """Markets or books in the response."""
    body: str | None
    at_ms: int


class Journal:
    """The facts, the served requests, the listeners and the waiters of a simulator."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.facts: list[Fact] = []
        self.requests: list[ServedRequest] = []
        self.listeners: list[Callable[[Fact], None]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def note(self, kind: FactKind, connection_id: int | None = None, detail: str = "") -> Fact:
        """Record a fact, tell the listeners, wake the waiters whose condition now holds."""
        fact = Fact(len(self.facts), kind, connection_id, detail, self.clock())
        self.facts.append(fact)
        for listener in list(self.listeners):
            try:
                listener(fact)
            except Exception:  # a listener's bug must not break the server
                log.exception("simulator listener failed on %s", fact)
        self.wake()
        return fact

    def served(
        self, method: str, path: str, query: str, status: int, items: int, body: str | None
    ) -> ServedRequest:
        """Record a served REST request (and note it as a fact)."""
        request = ServedRequest(
            len(self.requests), method, path, query, status, items, body, self.clock()
        )
        self.requests.append(request)
        self.note("request", None, f"{method} {path} {status}")
        return request

    def wake(self) -> None:
        """Resolve the waiters whose condition holds now (cheap when none wait)."""
        if not self._waiters:
            return
        still = []
        for condition, future in self._waiters:
            if future.done():
                continue
            try:
                holds = condition()
            except Exception as exc:
                future.set_exception(exc)
                continue
            if holds:
                future.set_result(None)
            else:
                still.append((condition, future))
        self._waiters = still

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float, what: str = "condition"
    ) -> None:
        """Return once ``condition()`` is true, checked now and after every fact and every
        frame written. Raises WaitTimeoutError after ``timeout`` seconds (naming ``what``);
        an exception from ``condition`` propagates."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise WaitTimeoutError(f"{what} did not come true within {timeout} s") from None
        finally:
            if not future.done():
                future.cancel()
