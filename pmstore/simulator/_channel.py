"""The market channel's WebSocket protocol (``/ws/market``), rule by rule.

- Handshake: HTTP 429 while ``Faults.reject_handshakes`` counts down, or beyond
  ``Faults.connect_limit``.
- The first client frame must be the initial subscription, a JSON object
  with ``"type": "market"`` (in any case: a client sending ``"Market"`` gets
  data from Polymarket) and an ``assets_ids`` list of strings
  (``initial_dump``, ``custom_feature_enabled`` booleans when present).
  Anything else first, the text ``PING`` included, closes the socket with
  1008 ``invalid subscription payload``; no frame within
  ``subscribe_timeout``: closed 1008 too.
- ``initial_dump: true``: one ``book`` per subscribed asset whose book is
  open, in JSON arrays (``books_per_frame``).
- Text ``PING`` -> text ``PONG``. A subscribed socket that sends no ``PING``
  for ``keepalive_timeout`` is closed (1001). The server sends protocol pings
  every ``ping_interval``.
- Later frames: ``{"operation": "subscribe"|"unsubscribe", "assets_ids": [...]}``
  (``custom_feature_enabled`` applied first when present), never
  acknowledged; a subscribe sends the new assets' books
  (``snapshot_on_subscribe``), ignores assets already subscribed, and with
  none new gets ``NO NEW ASSETS``. A second ``type`` frame, or anything else
  that is not ``PING`` or a valid operation, gets ``INVALID OPERATION``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from pmstore.simulator._config import SimulatorConfig
from pmstore.simulator._connection import Connection
from pmstore.simulator._faults import Faults, RateWindow
from pmstore.simulator._journal import Journal
from pmstore.simulator._router import Router

__all__ = ["INVALID_OPERATION", "INVALID_SUBSCRIPTION", "MarketChannel"]

log = logging.getLogger("pmstore.simulator")

INVALID_SUBSCRIPTION = "invalid subscription payload"
INVALID_OPERATION = "INVALID OPERATION"
NO_NEW_ASSETS = "NO NEW ASSETS"
_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _str_list(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def parse_subscription(text: str) -> tuple[list[str], bool | None, bool] | None:
    """(assets, initial_dump or None when absent, custom features) of a valid initial frame,
    else None."""
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    assets = _str_list(message.get("assets_ids"))
    if not isinstance(kind, str) or kind.lower() != "market" or assets is None:
        return None
    dump = message.get("initial_dump")
    custom = message.get("custom_feature_enabled", False)
    if (dump is not None and not isinstance(dump, bool)) or not isinstance(custom, bool):
        return None
    return assets, dump, custom


class MarketChannel:
    """The ``/ws/market`` handler (see the module docstring)."""

    def __init__(
        self,
        config: SimulatorConfig,
        faults: Faults,
        router: Router,
        journal: Journal,
        open_due: Callable[[], object],
    ) -> None:
        self.open_due = open_due
        """Opens the books whose listing delay has passed (before a subscription's snapshots)."""
        self.config = config
        self.faults = faults
        self.router = router
        self.journal = journal
        self._window: RateWindow | None = None
        self._window_limit: tuple[int, float] | None = None
        self._next_id = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    def _refused(self) -> bool:
        faults = self.faults
        if faults.reject_handshakes > 0:
            faults.reject_handshakes -= 1
            return True
        limit = faults.connect_limit
        if limit is None:
            return False
        if self._window is None or self._window_limit != limit:
            self._window = RateWindow(*limit)
            self._window_limit = limit
        return not self._window.allow()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one socket from handshake to close."""
        if self._refused():
            self.journal.note("handshake_rejected", None, "HTTP 429")
            return web.json_response({"error": "Too Many Requests"}, status=429)
        config = self.config
        ws = web.WebSocketResponse(
            heartbeat=config.ping_interval, timeout=config.close_timeout, max_msg_size=1 << 22
        )
        await ws.prepare(request)
        conn = Connection(
            self._next_id,
            ws,
            request,
            opened_at_ms=self.journal.clock(),
            record=config.record_frames,
            max_queue=config.max_queue,
            seed=config.seed,
            clock=self.journal.clock,
            on_write=self.journal.wake,
        )
        self._next_id += 1
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        self.router.register(conn)
        conn.start_writer()
        self.journal.note("connected", conn.id, request.remote or "")
        try:
            await self._serve(conn, ws)
        except Exception:
            log.exception("connection %d: handler failed", conn.id)
            raise
        finally:
            self.router.unregister(conn)
            conn.finish(ws.close_code)
            self.journal.note("closed", conn.id, f"{conn.close_code} {conn.close_reason}".strip())
            if task is not None:
                self.handlers.discard(task)
        return ws

    async def _invalid(self, conn: Connection, reason: str) -> None:
        self.journal.note("invalid_subscription", conn.id, reason)
        await conn.close(1008, INVALID_SUBSCRIPTION if reason != "timeout" else "no subscription")

    async def _serve(self, conn: Connection, ws: web.WebSocketResponse) -> None:
        config = self.config
        try:
            first = await ws.receive(timeout=config.subscribe_timeout)
        except TimeoutError:
            await self._invalid(conn, "timeout")
            return
        if first.type in _CLOSING:
            return
        if first.type != WSMsgType.TEXT:
            conn.record_received(None)
            await self._invalid(conn, "binary first frame")
            return
        conn.record_received(first.data)
        parsed = parse_subscription(first.data)
        if parsed is None:
            await self._invalid(conn, first.data[:200])
            return
        assets, dump, custom = parsed
        conn.initial_dump = dump
        self.router.set_custom(conn, custom)
        snapshots = dump if dump is not None else config.dump_without_flag
        self.open_due()
        self.router.subscribe(conn, assets, snapshots=snapshots)
        conn.state = "subscribed"
        conn.subscribed.set()
        self.journal.note("subscribed", conn.id, str(len(conn.assets)))
        await self._subscribed_loop(conn, ws)

    async def _subscribed_loop(self, conn: Connection, ws: web.WebSocketResponse) -> None:
        keepalive = self.config.keepalive_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + keepalive if keepalive is not None else None
        while True:
            timeout = None
            if deadline is not None:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    await conn.close(1001, "keepalive timeout: no PING")
                    return
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                continue
            if msg.type in _CLOSING:
                return
            if msg.type != WSMsgType.TEXT:
                conn.record_received(None)
                self._invalid_operation(conn, "binary frame")
                continue
            text: str = msg.data
            conn.record_received(text)
            if text == "PING":
                conn.pings += 1
                self.router.control(conn, "PONG")
                if keepalive is not None:
                    deadline = loop.time() + keepalive
                self.journal.note("ping", conn.id)
                continue
            self._operation(conn, text)

    def _invalid_operation(self, conn: Connection, why: str) -> None:
        self.router.control(conn, INVALID_OPERATION)
        self.journal.note("invalid_operation", conn.id, why)

    def _operation(self, conn: Connection, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            self._invalid_operation(conn, text[:200])
            return
        if not isinstance(message, dict) or "type" in message:
            self._invalid_operation(conn, text[:200])
            return
        operation = message.get("operation")
        assets = _str_list(message.get("assets_ids"))
        if operation not in ("subscribe", "unsubscribe") or assets is None:
            self._invalid_operation(conn, text[:200])
            return
        custom = message.get("custom_feature_enabled")
        if isinstance(custom, bool):
            self.router.set_custom(conn, custom)
        if operation == "subscribe":
            self.open_due()
            new = self.router.subscribe(conn, assets, snapshots=self.config.snapshot_on_subscribe)
            if not new and self.config.no_new_assets_text:
                self.router.control(conn, NO_NEW_ASSETS)
            detail = f"subscribe {len(new)} new of {len(assets)}"
        else:
            gone = self.router.unsubscribe(conn, assets)
            detail = f"unsubscribe {len(gone)} of {len(assets)}"
        self.journal.note("operation", conn.id, detail)
