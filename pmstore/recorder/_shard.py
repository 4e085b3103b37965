"""One market-channel socket: connect, subscribe once, ping, read, watch for silence, reconnect.

The protocol rules it keeps (issue 24, docs/recorder.md):

- exactly one initial frame per socket (``{"assets_ids": [...], "type":
  "market", "initial_dump": true, "custom_feature_enabled": true}``), then
  only ``operation`` frames (subscribe / unsubscribe);
- no PING before the initial frame; then a text ``PING`` every
  ``ping_every`` seconds;
- connects go through a shared gate that spaces them ``stagger`` apart;
- after a failure it waits a jittered exponential backoff (no cap on
  attempts; the delay is capped), and the attempt count resets only once a
  data frame arrives on a new socket, not on the TCP connect;
- a data-silence deadline (``silence_timeout``, independent of PONG):
  a socket without a data frame for that long is closed and rebuilt.

Every received frame is handed to ``emit`` verbatim, as are the events that
matter to the deriver (open, sub, unsub, silence, close).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

__all__ = ["ConnectGate", "Shard", "ShardOptions"]

logger = logging.getLogger("pmstore.recorder")

_NOT_DATA: Final = frozenset({"PONG", "NO NEW ASSETS", "INVALID OPERATION"})
MAX_FRAME_BYTES: Final = 64 << 20
"""Largest frame accepted (an initial dump of hundreds of books arrives as one array)."""

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ShardOptions:
    """The connection rules' numbers (seconds)."""

    ws_url: str
    ping_every: float = 10.0
    silence_timeout: float = 60.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    connect_timeout: float = 15.0


class ConnectGate:
    """Spaces socket connects at least ``stagger`` seconds apart (all shards share one)."""

    def __init__(self, stagger: float) -> None:
        self.stagger = stagger
        self._lock = asyncio.Lock()
        self._last = -1e18

    async def wait(self) -> None:
        async with self._lock:
            delay = self._last + self.stagger - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last = time.monotonic()


def is_data(text: str) -> bool:
    """Whether a text frame is data (JSON), not PONG or another plain-text notice."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in "{[" and text.strip() not in _NOT_DATA


class Shard:
    """One socket's worth of tokens (at most the shard size) and the task that serves them.

    ``conn`` is its connection id in the archive (``c``); each new socket
    is a new epoch (``e``). ``add``/``remove`` change its tokens: on a live
    socket with operation frames, else at the next connect.
    """

    def __init__(
        self,
        conn: int,
        session: aiohttp.ClientSession,
        gate: ConnectGate,
        options: ShardOptions,
        emit: Emit,
        rng: random.Random,
        on_state: Callable[[], None],
    ) -> None:
        self.conn = conn
        self.session = session
        self.gate = gate
        self.options = options
        self.emit = emit
        self.rng = rng
        self.on_state = on_state
        self.tokens: dict[str, None] = {}
        self.epoch = 0
        self.connected = False
        self.subscribed = False
        """The initial frame has been sent on the current socket."""
        self.subscriptions = 0
        """Initial frames sent (one per socket)."""
        self.attempt = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.silences = 0
        self.frames = 0
        self.bytes = 0
        self.last_data_mono: float | None = None
        self.last_data_ns: int = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._has_tokens = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- tokens ---------------------------------------------------------------

    async def add(self, tokens: list[str]) -> None:
        """Subscribe ``tokens`` too (an operation frame on a live socket)."""
        new = [t for t in tokens if t not in self.tokens]
        if not new:
            return
        for t in new:
            self.tokens[t] = None
        self._has_tokens.set()
        async with self._send_lock:
            ws = self._ws
            if ws is not None and self.subscribed and not ws.closed:
                self.emit({"k": "sub", "c": self.conn, "e": self.epoch, "op": "subscribe",
                           "a": new})  # fmt: skip
                frame = {"operation": "subscribe", "assets_ids": new,
                         "custom_feature_enabled": True}  # fmt: skip
                await self._send(ws, orjson.dumps(frame).decode())

    async def remove(self, tokens: list[str]) -> None:
        """Unsubscribe ``tokens`` (an operation frame on a live socket); the deriver drops them."""
        gone = [t for t in tokens if t in self.tokens]
        if not gone:
            return
        for t in gone:
            del self.tokens[t]
        async with self._send_lock:
            self.emit({"k": "unsub", "c": self.conn, "e": self.epoch, "a": gone})
            ws = self._ws
            if ws is not None and self.subscribed and not ws.closed:
                frame = {"operation": "unsubscribe", "assets_ids": gone}
                await self._send(ws, orjson.dumps(frame).decode())

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        try:
            await ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            logger.debug("socket %d: send failed: %s", self.conn, exc)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self.tokens:
            self._has_tokens.set()
        self._task = asyncio.create_task(self._run(), name=f"pmstore-shard-{self.conn}")

    def cancel(self) -> None:
        """Stop reading now: no frame is taken after this call (the task is cancelled)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop reading (the receive loop is cancelled first) and wait for the task."""
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close_socket(self) -> None:
        """Close the current socket (after ``stop``), without waiting long for the server."""
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                await asyncio.wait_for(ws.close(), timeout=1.0)
        self.connected = self.subscribed = False

    def backoff_delay(self) -> float:
        """The wait before the next connect: base * 2^attempt (capped), times 0.5-1.0."""
        o = self.options
        raw = min(o.backoff_cap, o.backoff_base * (2 ** min(self.attempt, 30)))
        return float(raw * self.rng.uniform(0.5, 1.0))

    async def _run(self) -> None:
        while not self._stopping:
            await self._has_tokens.wait()
            await self.gate.wait()
            try:
                ws = await self.session.ws_connect(
                    self.options.ws_url,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=MAX_FRAME_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.connect_failures += 1
                logger.info("socket %d: connect failed: %s", self.conn, _describe(exc))
                await self._backoff()
                continue
            try:
                await self._serve(ws)
            finally:
                self._ws = None
                self.connected = self.subscribed = False
                if not ws.closed:
                    with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                        await asyncio.wait_for(ws.close(), timeout=1.0)
                self.on_state()
            if not self._stopping:
                self.reconnects += 1
                await self._backoff()

    async def _backoff(self) -> None:
        delay = self.backoff_delay()
        self.attempt += 1
        await asyncio.sleep(delay)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """One socket's life: initial frame, pings, frames until it closes or goes silent."""
        self.epoch += 1
        self._ws = ws
        self.connected = True
        got_data = False
        self.emit({"k": "open", "c": self.conn, "e": self.epoch})
        async with self._send_lock:
            tokens = list(self.tokens)
            self.emit({"k": "sub", "c": self.conn, "e": self.epoch, "op": "initial", "a": tokens})
            initial = {"assets_ids": tokens, "type": "market", "initial_dump": True,
                       "custom_feature_enabled": True}  # fmt: skip
            await self._send(ws, orjson.dumps(initial).decode())
            self.subscribed = True
            self.subscriptions += 1
        self.on_state()
        pinger = asyncio.create_task(self._ping(ws), name=f"pmstore-ping-{self.conn}")
        why, code = "closed", None
        deadline = time.monotonic() + self.options.silence_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.silences += 1
                    self.emit({"k": "silence", "c": self.conn, "e": self.epoch,
                               "last": self.last_data_ns})  # fmt: skip
                    why = "silence"
                    logger.info("socket %d: no data for %.0f s, rebuilding it", self.conn,
                                self.options.silence_timeout)  # fmt: skip
                    return
                try:
                    msg = await ws.receive(timeout=remaining)
                except TimeoutError:
                    continue
                if msg.type is aiohttp.WSMsgType.TEXT:
                    text: str = msg.data
                    record: dict[str, Any] = {"k": "frame", "c": self.conn, "e": self.epoch,
                                              "d": text}  # fmt: skip
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    raw: bytes = msg.data
                    text = ""
                    record = {"k": "frame", "c": self.conn, "e": self.epoch,
                              "b64": base64.b64encode(raw).decode()}  # fmt: skip
                else:
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        code = ws.close_code
                        why = f"server closed ({msg.data}: {msg.extra or ''})".strip()
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        why = f"error: {_describe(msg.data)}"
                    else:
                        code = ws.close_code
                        why = "closed"
                    return
                self.frames += 1
                self.bytes += len(text) if text else len(msg.data)
                self.emit(record)
                if text and is_data(text):
                    deadline = time.monotonic() + self.options.silence_timeout
                    self.last_data_mono = time.monotonic()
                    self.last_data_ns = int(record.get("t", 0))  # none: nothing archived
                    if not got_data:
                        got_data = True
                        self.attempt = 0  # backoff resets on data, not on connect
        except asyncio.CancelledError:
            why = "stop"
            raise
        finally:
            pinger.cancel()
            close: dict[str, Any] = {"k": "close", "c": self.conn, "e": self.epoch, "why": why}
            if code is not None:
                close["code"] = code
            self.emit(close)
            if why not in ("stop",):
                logger.info("socket %d (epoch %d): %s", self.conn, self.epoch, why)

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Text PING every ``ping_every`` seconds (started after the initial frame)."""
        while not ws.closed:
            await asyncio.sleep(self.options.ping_every)
            async with self._send_lock:
                if ws.closed:
                    return
                await self._send(ws, "PING")


def _describe(exc: object) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"handshake refused: HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
