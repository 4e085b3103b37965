"""One market-channel socket: its subscription, what was sent and received, its faults.

Frames are written by the connection's own writer task, in the order they
were queued, so what a socket receives follows the model's order exactly;
``flushed()`` resolves once everything queued before it is written to the
transport.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web

__all__ = ["Connection", "ConnectionState", "ReceivedFrame", "SentFrame"]

log = logging.getLogger("pmstore.simulator")

ConnectionState = Literal["connected", "subscribed", "closed"]
"""``connected`` until a valid first frame, then ``subscribed``, then ``closed``."""


@dataclass(frozen=True, slots=True)
class SentFrame:
    """A text frame written to a socket (``seq`` counts the socket's frames from 0)."""

    seq: int
    at_ms: int
    data: bytes
    """The frame's text, UTF-8."""
    control: bool
    """True for ``PONG``, ``INVALID OPERATION``, ``NO NEW ASSETS``; False for data frames."""
    duplicate: bool
    """True for the second copy of a frame sent twice (the duplicate-frames fault)."""

    @property
    def text(self) -> str:
        """The frame's text."""
        return self.data.decode()

    def payloads(self) -> list[dict[str, Any]]:
        """The JSON objects of a data frame (an array's items), none for a text frame."""
        if self.control:
            return []
        parsed = orjson.loads(self.data)
        return list(parsed) if isinstance(parsed, list) else [parsed]


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """A frame the client sent (``text`` is None for a binary frame)."""

    seq: int
    at_ms: int
    text: str | None


_Item = tuple[bytes, bool, bool] | asyncio.Future[None]


class Connection:
    """A market-channel socket as the simulator saw it (ground truth for tests) and its
    per-socket faults.

    Read: ``id``, ``state``, ``asset_ids``, ``custom_features``, ``initial_dump``,
    ``sent`` / ``received`` (when the simulator records frames), ``frames_sent``,
    ``suppressed`` (data frames lost to a fault), ``pings``, ``close_code``,
    ``close_reason``, ``closed_by``; wait on the ``subscribed`` and ``closed`` events.
    Act: :meth:`freeze`, :meth:`unfreeze`, :meth:`drop`, :meth:`close`. The other
    methods are the server's.
    """

    def __init__(
        self,
        conn_id: int,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        opened_at_ms: int,
        record: bool,
        max_queue: int,
        seed: int,
        clock: Callable[[], int],
        on_write: Callable[[], None],
    ) -> None:
        self.id = conn_id
        self.remote = request.remote or ""
        self.opened_at_ms = opened_at_ms
        """When the handshake completed, by the simulator's clock."""
        self.opened_monotonic = time.monotonic()
        """When the handshake completed, by ``time.monotonic()`` (real time, e.g. to check
        that a client staggers its connects)."""
        self.state: ConnectionState = "connected"
        self.assets: dict[str, None] = {}
        self.custom_features = False
        self.initial_dump: bool | None = None
        """The first frame's ``initial_dump`` (None when absent)."""
        self.sent: list[SentFrame] = []
        self.received: list[ReceivedFrame] = []
        self.frames_sent = 0
        self.bytes_sent = 0
        self.suppressed = 0
        self.pings = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: Literal["client", "server", "dropped"] | None = None
        self.frozen = False
        self.subscribed = asyncio.Event()
        self.closed = asyncio.Event()
        self.random = random.Random(seed * 1_000_003 + conn_id)
        """The socket's own seeded RNG (duplicate frames)."""
        self._ws = ws
        self._request = request
        self._record = record
        self._max_queue = max_queue
        self._clock = clock
        self._on_write = on_write
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._received_seq = 0

    def __repr__(self) -> str:
        return (
            f"Connection(id={self.id}, state={self.state}, assets={len(self.assets)}, "
            f"frames_sent={self.frames_sent})"
        )

    # -- what tests read ----------------------------------------------------------------

    @property
    def asset_ids(self) -> tuple[str, ...]:
        """The subscribed assets, in subscription order."""
        return tuple(self.assets)

    def data_frames(self) -> list[SentFrame]:
        """The recorded data frames (no control text), in order."""
        return [frame for frame in self.sent if not frame.control]

    def events(self) -> list[dict[str, Any]]:
        """Every event object sent (arrays flattened), in order."""
        return [payload for frame in self.sent for payload in frame.payloads()]

    def texts(self) -> list[str]:
        """Every recorded frame's text, in order."""
        return [frame.text for frame in self.sent]

    # -- per-socket faults --------------------------------------------------------------

    def freeze(self) -> None:
        """Silent freeze: data frames stop (they are lost), ``PING`` still gets ``PONG``."""
        self.frozen = True

    def unfreeze(self) -> None:
        """End a freeze (the frames lost meanwhile stay lost)."""
        self.frozen = False

    async def drop(self) -> None:
        """Close the TCP connection abruptly, without a close frame (the client sees 1006);
        returns once the simulator has closed its side."""
        if self.state != "closed":
            self.closed_by = "dropped"
            self.close_code = 1006
            self.close_reason = "dropped by the simulator"
            transport = self._request.transport
            if transport is not None:
                transport.abort()
            self.stop_writer()
        await self.closed.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with a close frame (frames still queued are discarded); returns once closed
        (after the client's close frame, or ``close_timeout``)."""
        if self.state == "closed" or self.closed_by is not None:
            await self.closed.wait()
            return
        self.closed_by = "server"
        self.close_code = code
        self.close_reason = reason
        self.stop_writer()
        await self._ws.close(code=code, message=reason.encode())

    # -- the server's side ----------------------------------------------------------------

    def start_writer(self) -> None:
        """Start the task that writes queued frames."""
        self._writer = asyncio.create_task(self._write_loop(), name=f"sim-ws-{self.id}")

    def stop_writer(self) -> None:
        """Stop writing; resolve every pending flush."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        self._release()

    def queue(self, data: bytes, *, control: bool = False, duplicate: bool = False) -> None:
        """Queue a frame for writing. A socket with more than ``max_queue`` frames waiting
        (a slow consumer) is dropped."""
        if self.state == "closed" or self.closed_by is not None:
            return
        if len(self._queue) >= self._max_queue:
            log.warning("connection %d: %d frames waiting, dropped", self.id, len(self._queue))
            self.closed_by = "dropped"
            self.close_code = 1006
            self.close_reason = "slow consumer: send queue full"
            transport = self._request.transport
            if transport is not None:
                transport.abort()
            self.stop_writer()
            return
        self._queue.append((data, control, duplicate))
        self._wakeup.set()

    def flushed(self) -> asyncio.Future[None]:
        """A future resolved once every frame queued so far is written (or the socket is
        gone)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._writer is None or self._writer.done():
            future.set_result(None)
        else:
            self._queue.append(future)
            self._wakeup.set()
        return future

    def record_received(self, text: str | None) -> None:
        """Keep a frame the client sent."""
        if self._record:
            self.received.append(ReceivedFrame(self._received_seq, self._clock(), text))
        self._received_seq += 1

    def finish(self, code: int | None) -> None:
        """Mark the socket closed (``code``: the close code aiohttp saw)."""
        self.stop_writer()
        if self.closed_by is None:
            self.closed_by = "client"
            self.close_code = code if code is not None else 1006
        self.state = "closed"
        self.closed.set()

    def _release(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item = self._queue.popleft()
                if isinstance(item, asyncio.Future):
                    if not item.done():
                        item.set_result(None)
                    continue
                data, control, duplicate = item
                await ws.send_frame(data, WSMsgType.TEXT)
                if self._record:
                    self.sent.append(
                        SentFrame(self.frames_sent, self._clock(), data, control, duplicate)
                    )
                self.frames_sent += 1
                self.bytes_sent += len(data)
                self._on_write()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("connection %d: writing stopped: %s", self.id, exc)
        finally:
            self._release()
