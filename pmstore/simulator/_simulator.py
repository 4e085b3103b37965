"""The :class:`Simulator`: one aiohttp server for Gamma, the CLOB and the market channel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from pmstore.errors import ConfigurationError
from pmstore.simulator._book import COARSE_TICK, FINE_TICK, Side, parse_price, parse_size
from pmstore.simulator._channel import MarketChannel
from pmstore.simulator._clob import ClobApi
from pmstore.simulator._config import SimulatorConfig
from pmstore.simulator._connection import Connection
from pmstore.simulator._exchange import Exchange
from pmstore.simulator._faults import Faults
from pmstore.simulator._gamma import GammaApi
from pmstore.simulator._journal import Fact, Journal, ServedRequest
from pmstore.simulator._market import Market, MarketInfo
from pmstore.simulator._payloads import Emission, Payload, rest_book, ws_book
from pmstore.simulator._router import Router

__all__ = ["CLOB_PREFIX", "GAMMA_PREFIX", "WS_PATH", "Simulator"]

log = logging.getLogger("pmstore.simulator")

GAMMA_PREFIX = "/gamma"
"""Gamma's base path on the simulator (``gamma_url``)."""
CLOB_PREFIX = "/clob"
"""The CLOB's base path on the simulator (``clob_url``)."""
WS_PATH = "/ws/market"
"""The market channel's path (``ws_url``)."""


class Simulator:
    """A Polymarket simulator on one port: Gamma keyset discovery, CLOB books and the market
    channel, with real payload shapes, a seeded market model and fault switches.

    Use it as an async context manager (it binds ``config.host``:``config.port`` on
    entry, 0 = a free port) and point a client at :attr:`gamma_url`,
    :attr:`clob_url` and :attr:`ws_url`::

        async with Simulator(SimulatorConfig(markets=10, seed=1)) as sim:
            ...                                   # a client connects and subscribes
            await sim.wait_connections(1)
            frames = await sim.step(20)           # 20 random events, written when it returns
            sim.connections[0].sent               # what that socket was sent, in order

    The model only moves when told (:meth:`step`, the explicit actions, or the
    rate mode). Every driving call returns once its frames are written to the
    sockets' transports. Raises ConfigurationError for a bad config.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.config.check()
        self.faults: Faults = dataclasses.replace(self.config.faults)
        """The live fault switches (change them at any time)."""
        self.clock = self.config.clock
        self._journal = Journal(self.clock)
        self._exchange = Exchange(
            seed=self.config.seed,
            markets=self.config.markets,
            closed_markets=self.config.closed_markets,
            now_ms=self.clock(),
            empty_book_fraction=self.config.empty_book_fraction,
        )
        self._router = Router(self.config, self.faults, self._exchange, self.clock)
        self._channel = MarketChannel(
            self.config, self.faults, self._router, self._journal, self._open_due
        )
        self._gamma = GammaApi(self.config, self._exchange, self._journal)
        self._clob = ClobApi(self.config, self._exchange, self._journal, self._open_due)
        self._runner: web.AppRunner | None = None
        self._rate_task: asyncio.Task[None] | None = None
        self._chaos_task: asyncio.Task[None] | None = None
        self._maintenance_end: asyncio.TimerHandle | None = None
        self._chaos_rng = random.Random(self.config.seed * 7 + 3)
        self.rate = 0.0
        """Events per second of the rate mode (0: off)."""
        self.port = 0
        """The bound port (after start)."""

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (routes of the three services)."""
        app = web.Application()
        app.router.add_get(f"{GAMMA_PREFIX}/markets/keyset", self._gamma.markets_keyset)
        app.router.add_post(f"{CLOB_PREFIX}/books", self._clob.books)
        app.router.add_get(f"{CLOB_PREFIX}/book", self._clob.book)
        app.router.add_get(WS_PATH, self._channel.handle)
        return app

    async def start(self) -> None:
        """Bind and serve; start the rate mode and chaos when configured. Raises OSError when
        the port cannot be bound."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        if self.config.rate > 0:
            self.start_rate(self.config.rate)
        if self.config.chaos.periods():
            self._chaos_task = asyncio.create_task(self._chaos_loop(), name="sim-chaos")

    async def close(self) -> None:
        """Stop the background tasks, close every socket (1001), stop serving."""
        await self.stop_rate()
        if self._chaos_task is not None:
            self._chaos_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._chaos_task
            self._chaos_task = None
        if self._maintenance_end is not None:
            self._maintenance_end.cancel()
            self._maintenance_end = None
        if self._runner is None:
            return
        await asyncio.gather(
            *(conn.close(1001, "server shutdown") for conn in self.open_connections),
            return_exceptions=True,
        )
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def gamma_url(self) -> str:
        """Gamma's base URL (``GET {gamma_url}/markets/keyset``)."""
        return f"{self.base_url}{GAMMA_PREFIX}"

    @property
    def clob_url(self) -> str:
        """The CLOB's base URL (``POST {clob_url}/books``, ``GET {clob_url}/book``)."""
        return f"{self.base_url}{CLOB_PREFIX}"

    @property
    def ws_url(self) -> str:
        """The market channel's full URL (``ws://host:port/ws/market``)."""
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    # -- ground truth --------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """Every socket opened so far, in order (closed ones too)."""
        return list(self._router.connections)

    @property
    def open_connections(self) -> list[Connection]:
        """The sockets not closed yet."""
        return [conn for conn in self._router.connections if conn.state != "closed"]

    @property
    def facts(self) -> list[Fact]:
        """Every fact observed, in order (see ``FactKind``)."""
        return list(self._journal.facts)

    @property
    def requests(self) -> list[ServedRequest]:
        """Every REST request served, in order."""
        return list(self._journal.requests)

    def add_listener(self, listener: Callable[[Fact], None]) -> None:
        """Call ``listener(fact)`` for every fact from now on (synchronously, in the server's
        loop: keep it short; its exceptions are logged, not raised)."""
        self._journal.listeners.append(listener)

    def remove_listener(self, listener: Callable[[Fact], None]) -> None:
        """Stop calling ``listener``."""
        self._journal.listeners.remove(listener)

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Return once ``condition()`` holds; it is checked now and after every fact and every
        frame written. Raises WaitTimeoutError after ``timeout`` seconds."""
        await self._journal.wait_for(condition, timeout, what)

    async def wait_connections(self, count: int, timeout: float = 10.0) -> list[Connection]:
        """Return the sockets that subscribed, once at least ``count`` have (closed ones count).
        Raises WaitTimeoutError."""

        def enough() -> bool:
            return sum(conn.subscribed.is_set() for conn in self._router.connections) >= count

        await self.wait_for(enough, timeout, f"{count} subscribed connection(s)")
        return [conn for conn in self._router.connections if conn.subscribed.is_set()]

    # -- the model -----------------------------------------------------------------------

    def markets(self, *, closed: bool | None = None) -> list[MarketInfo]:
        """Every market (or only the open / closed ones), in listing order."""
        return [
            m.info()
            for m in self._exchange.markets.values()
            if closed is None or m.closed == closed
        ]

    def market(self, condition_id: str) -> MarketInfo:
        """One market; ConfigurationError when unknown."""
        return self._exchange.market(condition_id).info()

    def token_ids(self, *, booked_only: bool = True) -> list[str]:
        """The tokens of open markets (only those whose books are open, by default)."""
        return [
            token
            for m in self._exchange.markets.values()
            if not m.closed and (m.booked or not booked_only)
            for token in m.token_ids
        ]

    def market_of(self, token_id: str) -> MarketInfo:
        """The market a token belongs to; ConfigurationError when unknown."""
        return self._exchange.token(token_id)[0].info()

    def subscribed_assets(self) -> set[str]:
        """Every asset some open socket is subscribed to."""
        return self._router.subscribed()

    def book(self, token_id: str) -> Payload:
        """A token's current book in CLOB ``/book`` shape; ConfigurationError when unknown."""
        market, outcome = self._exchange.token(token_id)
        return rest_book(market, outcome, self.clock())

    def best(self, token_id: str) -> tuple[str, str]:
        """A token's best bid and ask as ``price_change`` states them (``"0"``/``"1"`` for an
        empty side); ConfigurationError when unknown."""
        market, outcome = self._exchange.token(token_id)
        return market.book.best_texts(outcome)

    # -- driving -------------------------------------------------------------------------

    def _open_due(self) -> list[Payload]:
        """Open the books whose listing delay has passed; their snapshots are queued."""
        if not self._exchange.pending:
            return []
        return self._route(self._exchange.open_due(self.clock()))

    def _route(self, emissions: Iterable[Emission]) -> list[Payload]:
        out = []
        for emission in emissions:
            if emission.event_type == "market_resolved" and self.faults.drop_market_resolved:
                continue
            self._router.route(emission)
            out.append(emission.payload)
        return out

    def _random(self, candidates: list[Market], n: int) -> list[Payload]:
        out: list[Payload] = []
        rng = self._exchange.rng
        faults = self.faults
        events = 0
        attempts = 0
        while events < n and candidates and attempts < 4 * n:
            attempts += 1
            market = rng.choice(candidates)
            emissions = self._exchange.random_events(
                market,
                self.clock(),
                tick_change_rate=faults.tick_size_change_rate,
                legacy=faults.legacy_price_change,
            )
            if emissions:
                events += 1
                out += self._route(emissions)
        return out

    async def step(self, n: int = 1, *, only_subscribed: bool = True) -> list[Payload]:
        """Emit ``n`` random events and return their payloads (before per-socket cuts and
        faults) once the frames are written. Events happen on markets some socket is
        subscribed to (``only_subscribed``; none subscribed: nothing happens), else on any
        open market. During maintenance nothing happens. Books of listed markets whose
        delay has passed open first (:meth:`open_books`)."""
        if n < 0:
            raise ConfigurationError(f"n must be >= 0, not {n}")
        if self.faults.maintenance:
            return []
        out = self._open_due()
        trading = list(self._exchange.trading.values())
        if only_subscribed:
            subscribed = self._router.by_asset
            trading = [m for m in trading if any(t in subscribed for t in m.token_ids)]
        out += self._random(trading, n)
        await self._router.flush()
        return out

    async def set_level(
        self, token_id: str, side: Side, price: str | float, size: str | float
    ) -> list[Payload]:
        """Set the total size at a level of a token's book (size 0 removes it): one
        ``price_change`` with the token's entry and its mirror on the other token, then
        what follows (``best_bid_ask``, a tick-size change). ConfigurationError for an
        unknown or closed token, a price off the tick or crossing the other side."""
        market, outcome = self._trading_token(token_id)
        if side not in ("BUY", "SELL"):
            raise ConfigurationError(f"side must be BUY or SELL, not {side!r}")
        milli, hundredths = parse_price(price), parse_size(size)
        if milli % market.tick:
            raise ConfigurationError(f"price {price} is off the tick {market.tick / 1000}")
        bid, ask = market.book.best(outcome)
        if side == "BUY" and ask is not None and milli >= ask and hundredths:
            raise ConfigurationError(f"a bid at {price} would cross the best ask")
        if side == "SELL" and bid is not None and milli <= bid and hundredths:
            raise ConfigurationError(f"an ask at {price} would cross the best bid")
        emissions = self._exchange.set_levels(
            market,
            [(outcome, side, milli, hundredths)],
            self.clock(),
            legacy=self.faults.legacy_price_change,
        )
        return await self._send(emissions)

    async def trade(self, token_id: str, side: Side, size: str | float) -> list[Payload]:
        """A taker order of ``side`` on a token, filled against its best opposite level (up to
        that level's size): ``last_trade_price``, then a ``book`` of each token of the
        market. ConfigurationError when that side is empty or the token unknown/closed."""
        market, outcome = self._trading_token(token_id)
        if side not in ("BUY", "SELL"):
            raise ConfigurationError(f"side must be BUY or SELL, not {side!r}")
        emissions = self._exchange.trade(market, outcome, side, parse_size(size), self.clock())
        return await self._send(emissions)

    async def change_tick_size(self, condition_id: str, tick_size: str | float) -> list[Payload]:
        """Set a market's tick (``"0.01"`` or ``"0.001"``): ``tick_size_change`` per token,
        and when coarsening the levels off the grid go and a ``book`` of each follows."""
        market = self._exchange.market(condition_id)
        tick = {"0.01": COARSE_TICK, "0.001": FINE_TICK}.get(str(tick_size))
        if tick is None:
            raise ConfigurationError(f"tick_size must be 0.01 or 0.001, not {tick_size!r}")
        return await self._send(self._exchange.change_tick(market, tick, self.clock()))

    async def clear_book(self, condition_id: str) -> list[Payload]:
        """Empty a market's books (the empty-books fault): an empty ``book`` of each token."""
        market = self._exchange.market(condition_id)
        return await self._send(self._exchange.clear_book(market, self.clock()))

    async def send_books(self, token_ids: Iterable[str]) -> list[Payload]:
        """Send the current ``book`` of each token to its subscribers (as after a trade)."""
        now = self.clock()
        emissions = []
        for token in token_ids:
            market, outcome = self._exchange.token(token)
            emissions.append(Emission(ws_book(market, outcome, now, first=False), (token,)))
        return await self._send(emissions)

    async def list_market(self, *, bookable_delay: float | None = None) -> MarketInfo:
        """List a new market: on Gamma at once, ``new_market`` to every custom-feature socket,
        its books open once ``bookable_delay`` seconds of the clock have passed (default: the
        config's; 0: at once), at the next :meth:`step`, :meth:`open_books`, rate-mode tick,
        CLOB book request or subscription, whichever comes first."""
        delay = self.config.bookable_delay if bookable_delay is None else bookable_delay
        if delay < 0:
            raise ConfigurationError("bookable_delay must be >= 0")
        market, emissions = self._exchange.list_market(self.clock(), round(delay * 1000))
        emissions += self._exchange.open_due(self.clock())
        await self._send(emissions)
        return market.info()

    async def open_books(self) -> list[Payload]:
        """Open the books of listed markets whose delay has passed (a ``book`` of each token
        to its subscribers); :meth:`step`, the rate mode, CLOB book requests and
        subscriptions do this too."""
        out = self._open_due()
        await self._router.flush()
        return out

    async def resolve_market(self, condition_id: str, winner: int = 0) -> list[Payload]:
        """Resolve a market to outcome ``winner`` (0 or 1): Gamma shows it closed and
        resolved, its books are gone, ``market_resolved`` goes to custom-feature sockets
        of its tokens (unless ``faults.drop_market_resolved``)."""
        market = self._exchange.market(condition_id)
        return await self._send(self._exchange.resolve(market, winner, self.clock()))

    async def emit(
        self,
        frame: object,
        *,
        to: Connection | Iterable[Connection] | None = None,
        asset_id: str | None = None,
    ) -> None:
        """Send any frame verbatim as a data frame (faults apply): ``str``/``bytes`` as text,
        anything else JSON-encoded; to ``to``, else the sockets subscribed to ``asset_id``,
        else every subscribed socket. Returns once written."""
        if isinstance(frame, str):
            data = frame.encode()
        elif isinstance(frame, bytes):
            data = frame
        else:
            data = orjson.dumps(frame)
        for conn in self._targets(to, asset_id):
            self._router.data(conn, data)
        await self._router.flush()

    async def send_text(
        self, text: str, *, to: Connection | Iterable[Connection] | None = None
    ) -> None:
        """Send a control text frame (e.g. ``NO NEW ASSETS``), never suppressed by faults, to
        ``to`` or every subscribed socket. Returns once written."""
        for conn in self._targets(to, None):
            self._router.control(conn, text)
        await self._router.flush()

    def _targets(
        self, to: Connection | Iterable[Connection] | None, asset_id: str | None
    ) -> list[Connection]:
        if isinstance(to, Connection):
            return [to]
        if to is not None:
            return list(to)
        if asset_id is not None:
            return list(self._router.by_asset.get(asset_id, ()))
        return [c for c in self._router.connections if c.state == "subscribed"]

    def _trading_token(self, token_id: str) -> tuple[Market, int]:
        market, outcome = self._exchange.token(token_id)
        if market.closed or not market.booked:
            raise ConfigurationError(f"token {token_id} has no open book")
        return market, outcome

    async def _send(self, emissions: Iterable[Emission]) -> list[Payload]:
        out = self._route(emissions)
        await self._router.flush()
        return out

    # -- faults over time ----------------------------------------------------------------

    def maintenance(self, seconds: float) -> None:
        """A maintenance silence of ``seconds`` (Polymarket's weekly restart: ~90 s): no events
        happen, sockets stay open and answer PING. Needs the running loop."""
        self.faults.maintenance = True
        self._journal.note("maintenance", None, f"begins for {seconds} s")
        if self._maintenance_end is not None:
            self._maintenance_end.cancel()
        self._maintenance_end = asyncio.get_running_loop().call_later(seconds, self.end_maintenance)

    def end_maintenance(self) -> None:
        """End a maintenance silence now."""
        if self._maintenance_end is not None:
            self._maintenance_end.cancel()
            self._maintenance_end = None
        if self.faults.maintenance:
            self.faults.maintenance = False
            self._journal.note("maintenance", None, "ends")

    async def drop_all(self) -> None:
        """Drop every open socket abruptly (no close frame)."""
        await asyncio.gather(*(conn.drop() for conn in self.open_connections))

    # -- rate mode -----------------------------------------------------------------------

    def start_rate(self, events_per_second: float) -> None:
        """Emit random events in the background at this rate, on every open market (not only
        subscribed ones), until :meth:`stop_rate`. Needs the running loop."""
        if events_per_second <= 0:
            raise ConfigurationError(f"events_per_second must be > 0, not {events_per_second}")
        if self._rate_task is not None:
            self._rate_task.cancel()
        self.rate = events_per_second
        self._rate_task = asyncio.create_task(self._rate_loop(events_per_second), name="sim-rate")

    async def stop_rate(self) -> None:
        """Stop the rate mode (the events already emitted stay queued and are written)."""
        task, self._rate_task = self._rate_task, None
        self.rate = 0.0
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _rate_loop(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        tick = min(0.1, max(0.005, 1.0 / rate))
        started = loop.time()
        done = 0
        while True:
            due = int((loop.time() - started) * rate) - done
            if due > rate:  # fell behind by more than a second: do not burst to catch up
                done += due - int(rate)
                due = int(rate)
            if due > 0:
                done += due
                if not self.faults.maintenance:
                    self._open_due()
                    self._random(list(self._exchange.trading.values()), due)
            await asyncio.sleep(tick)

    async def _chaos_loop(self) -> None:
        loop = asyncio.get_running_loop()
        periods = self.config.chaos.periods()
        due = {name: loop.time() + period for name, period in periods.items()}
        rng = self._chaos_rng
        while True:
            name = min(due, key=lambda k: due[k])
            await asyncio.sleep(max(0.0, due[name] - loop.time()))
            due[name] += periods[name]
            try:
                await self._chaos(name, rng)
            except Exception:
                log.exception("simulator chaos %s failed", name)

    async def _chaos(self, name: str, rng: random.Random) -> None:
        subscribed = [c for c in self.open_connections if c.state == "subscribed"]
        if name == "freeze":
            candidates = [c for c in subscribed if not c.frozen]
            if candidates:
                victim = rng.choice(candidates)
                victim.freeze()
                log.info("chaos: connection %d frozen", victim.id)
        elif name == "drop":
            if subscribed:
                victim = rng.choice(subscribed)
                log.info("chaos: connection %d dropped", victim.id)
                await victim.drop()
        elif name == "maintenance":
            self.maintenance(self.config.chaos.maintenance_seconds)
        elif name == "new_market":
            await self.list_market()
        elif name == "resolve":
            trading = list(self._exchange.trading.values())
            if trading:
                market = rng.choice(trading)
                await self.resolve_market(market.condition_id, rng.randint(0, 1))

    # -- conveniences for callers that only know token ids ------------------------------

    def tokens_of(self, condition_id: str) -> tuple[str, str]:
        """A market's two token ids; ConfigurationError when unknown."""
        return self._exchange.market(condition_id).token_ids

    def describe(self) -> dict[str, Any]:
        """A summary for logs and the command line: markets, tokens, URLs, rate."""
        markets = self._exchange.markets.values()
        return {
            "markets": sum(not m.closed for m in markets),
            "closed_markets": sum(m.closed for m in markets),
            "tokens": len(self.token_ids()),
            "gamma_url": self.gamma_url,
            "clob_url": self.clob_url,
            "ws_url": self.ws_url,
            "rate": self.rate,
            "seed": self.config.seed,
        }
