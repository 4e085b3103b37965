"""Who gets which frame: subscriptions, routing of events, and the send-side faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import orjson

from pmstore.simulator._config import SimulatorConfig
from pmstore.simulator._connection import Connection
from pmstore.simulator._exchange import Exchange
from pmstore.simulator._faults import Faults
from pmstore.simulator._payloads import Emission, Payload, ws_book

__all__ = ["Router"]


class Router:
    """The subscription index of the market channel and the path of every frame to a socket.

    A data frame is lost (counted in ``Connection.suppressed``) when its socket
    is frozen, when every socket is (``freeze_all``, ``maintenance``), or when
    the socket has more assets than ``max_assets_per_socket``; otherwise it is
    queued, twice with probability ``duplicate_rate``. Control frames
    (``PONG``...) always go.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        faults: Faults,
        exchange: Exchange,
        clock: Callable[[], int],
    ) -> None:
        self.config = config
        self.faults = faults
        self.exchange = exchange
        self.clock = clock
        self.connections: list[Connection] = []
        """Every socket ever opened, in order."""
        self.by_asset: dict[str, dict[Connection, None]] = {}
        self.custom: dict[Connection, None] = {}
        """Subscribed sockets with ``custom_feature_enabled``."""
        self.touched: dict[Connection, None] = {}
        """Sockets with frames queued since the last :meth:`flush`."""

    # -- subscriptions --------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """A new socket."""
        self.connections.append(conn)

    def unregister(self, conn: Connection) -> None:
        """A socket is gone: forget its subscriptions."""
        for asset in conn.assets:
            subscribers = self.by_asset.get(asset)
            if subscribers is not None:
                subscribers.pop(conn, None)
                if not subscribers:
                    del self.by_asset[asset]
        self.custom.pop(conn, None)
        self.touched.pop(conn, None)

    def set_custom(self, conn: Connection, enabled: bool) -> None:
        """Turn the custom features of a subscribed socket on or off."""
        conn.custom_features = enabled
        if enabled:
            self.custom[conn] = None
        else:
            self.custom.pop(conn, None)

    def subscribe(self, conn: Connection, assets: Iterable[str], *, snapshots: bool) -> list[str]:
        """Add assets to a socket (those it has are ignored); with ``snapshots``, queue the
        current ``book`` of each new asset whose book is open. Returns the new assets."""
        new = []
        for asset in assets:
            if asset in conn.assets:
                continue
            conn.assets[asset] = None
            self.by_asset.setdefault(asset, {})[conn] = None
            new.append(asset)
        if snapshots and new:
            now = self.clock()
            books: list[Payload] = []
            for asset in new:
                found = self.exchange.by_token.get(asset)
                if found is not None and found[0].booked and not found[0].closed:
                    books.append(ws_book(found[0], found[1], now, first=True))
            self.books(conn, books)
        return new

    def unsubscribe(self, conn: Connection, assets: Iterable[str]) -> list[str]:
        """Remove assets from a socket (unknown ones are ignored). Returns those removed."""
        gone = []
        for asset in assets:
            if asset not in conn.assets:
                continue
            del conn.assets[asset]
            subscribers = self.by_asset.get(asset)
            if subscribers is not None:
                subscribers.pop(conn, None)
                if not subscribers:
                    del self.by_asset[asset]
            gone.append(asset)
        return gone

    def subscribed(self) -> set[str]:
        """Every asset some socket is subscribed to."""
        return set(self.by_asset)

    # -- sending ------------------------------------------------------------------------

    def blocked(self, conn: Connection) -> bool:
        """Whether data frames to ``conn`` are lost now."""
        faults = self.faults
        if conn.frozen or faults.freeze_all or faults.maintenance:
            return True
        limit = faults.max_assets_per_socket
        return limit is not None and len(conn.assets) > limit

    def data(self, conn: Connection, frame: bytes) -> None:
        """Queue a data frame, subject to the faults."""
        if self.blocked(conn):
            conn.suppressed += 1
            return
        conn.queue(frame)
        rate = self.faults.duplicate_rate
        if rate and conn.random.random() < rate:
            conn.queue(frame, duplicate=True)
        self.touched[conn] = None

    def control(self, conn: Connection, text: str) -> None:
        """Queue a control text frame (``PONG``, ``INVALID OPERATION``...): never suppressed."""
        conn.queue(text.encode(), control=True)
        self.touched[conn] = None

    def books(self, conn: Connection, books: list[Payload]) -> None:
        """Queue snapshots: JSON arrays of up to ``books_per_frame`` books (objects when 1)."""
        per_frame = self.config.books_per_frame
        if per_frame == 1:
            for book in books:
                self.data(conn, orjson.dumps(book))
            return
        for start in range(0, len(books), per_frame):
            self.data(conn, orjson.dumps(books[start : start + per_frame]))

    def route(self, emission: Emission) -> None:
        """Queue an event to every socket it is for (a ``price_change`` cut down to each
        socket's assets; the text encoded once per distinct cut)."""
        if emission.broadcast:
            targets: Iterable[Connection] = list(self.custom)
        else:
            assets = emission.assets
            if len(assets) == 1:
                targets = list(self.by_asset.get(assets[0], ()))
            else:
                seen: dict[Connection, None] = {}
                for asset in assets:
                    seen.update(self.by_asset.get(asset, {}))
                targets = list(seen)
            if emission.custom:
                targets = [conn for conn in targets if conn.custom_features]
        if not targets:
            return
        payload = emission.payload
        entries: list[Payload] | None = payload.get("price_changes")
        encoded: dict[frozenset[str] | None, bytes] = {}
        for conn in targets:
            key: frozenset[str] | None = None
            if entries is not None and len(emission.assets) > 1:
                key = frozenset(a for a in emission.assets if a in conn.assets)
                if len(key) == len(set(emission.assets)):
                    key = None
            frame = encoded.get(key)
            if frame is None:
                if key is None or entries is None:
                    frame = orjson.dumps(payload)
                else:
                    cut = dict(payload)
                    cut["price_changes"] = [e for e in entries if e["asset_id"] in key]
                    frame = orjson.dumps(cut)
                encoded[key] = frame
            self.data(conn, frame)

    async def flush(self) -> None:
        """Return once every frame queued so far is written to its socket's transport."""
        waits = [conn.flushed() for conn in self.touched]
        self.touched.clear()
        if waits:
            await asyncio.gather(*waits)
