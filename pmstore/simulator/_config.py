"""The simulator's configuration."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pmstore.errors import ConfigurationError
from pmstore.simulator._faults import Chaos, Faults

__all__ = ["Clock", "SimulatorConfig", "wall_clock_ms"]

Clock = Callable[[], int]
"""The simulator's clock: Unix time in milliseconds (``timestamp`` fields, listing delays)."""


def wall_clock_ms() -> int:
    """The wall clock in Unix milliseconds (the default :data:`Clock`)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How a :class:`~pmstore.simulator.Simulator` behaves. Durations are in seconds.

    The defaults are Polymarket's documented or observed behaviour.
    """

    markets: int = 20
    """Open binary markets at start (two tokens each)."""
    closed_markets: int = 0
    """Already resolved markets at start (Gamma ``closed=true``)."""
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    """0: a free port (read ``Simulator.port``)."""
    clock: Clock = wall_clock_ms
    """Injectable clock for ``timestamp`` fields and the listing delay."""
    empty_book_fraction: float = 0.0
    """Share of the starting markets whose books are empty (the empty-books fault)."""

    # -- market channel --------------------------------------------------------------
    subscribe_timeout: float = 10.0
    """A socket that sends no first frame within this is closed (1008)."""
    keepalive_timeout: float | None = 15.0
    """A subscribed socket that sends no text ``PING`` for this long is closed (clients
    PING every 10 s; Polymarket drops a silent one after about 10 s). None: never."""
    ping_interval: float | None = 20.0
    """The server's own protocol Ping frames (aiohttp heartbeat). None: none."""
    close_timeout: float = 2.0
    """How long a server-side close waits for the client's close frame."""
    dump_without_flag: bool = False
    """Whether an initial frame WITHOUT ``initial_dump`` gets the snapshots. Polymarket
    documents true as the default, yet at scale assets go without snapshots unless the
    flag is sent (nautilus #3963): by default the simulator sends none then."""
    snapshot_on_subscribe: bool = True
    """Whether ``{"operation": "subscribe"}`` sends a ``book`` for each new asset (reports
    differ: nautilus #4050 saw one, #4635 did not)."""
    books_per_frame: int = 50
    """Snapshots sent on subscription are JSON arrays of up to this many books; 1: each
    book its own object frame."""
    no_new_assets_text: bool = True
    """Answer a subscribe operation that adds no asset with the text ``NO NEW ASSETS``."""
    max_queue: int = 200_000
    """A socket with more frames than this waiting to be written is dropped (slow consumer)."""

    # -- listing ---------------------------------------------------------------------
    bookable_delay: float = 0.0
    """Seconds of the clock between a listing (``new_market``, Gamma) and the CLOB serving
    its books (Polymarket: minutes)."""

    # -- REST ------------------------------------------------------------------------
    books_rate_limit: tuple[int, float] = (500, 10.0)
    """``POST /books``: requests per window (seconds); beyond: HTTP 429."""
    book_rate_limit: tuple[int, float] = (1500, 10.0)
    """``GET /book``: requests per window (seconds); beyond: HTTP 429."""
    gamma_page_max: int = 100
    """``/markets/keyset`` caps ``limit`` at this."""
    gamma_default_limit: int = 20
    condition_ids_max: int = 100
    """More ``condition_ids`` in one Gamma request: HTTP 422."""

    # -- ground truth, rate mode, faults ---------------------------------------------
    record_frames: bool = True
    """Keep every frame sent and received, and every REST response, per connection
    (memory grows with traffic: off for long runs)."""
    rate: float = 0.0
    """Random events per second emitted in the background from start (0: only on demand)."""
    faults: Faults = field(default_factory=Faults)
    """The initial fault switches (the simulator works on a copy: ``Simulator.faults``)."""
    chaos: Chaos = field(default_factory=Chaos)

    def check(self) -> None:
        """Raise ConfigurationError for a value out of range."""
        if self.markets < 0 or self.closed_markets < 0:
            raise ConfigurationError("markets and closed_markets must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be within [0, 65535], not {self.port}")
        if not 0.0 <= self.empty_book_fraction <= 1.0:
            raise ConfigurationError("empty_book_fraction must be within [0, 1]")
        if self.books_per_frame < 1:
            raise ConfigurationError("books_per_frame must be >= 1")
        if self.rate < 0:
            raise ConfigurationError(f"rate must be >= 0, not {self.rate}")
        if self.bookable_delay < 0:
            raise ConfigurationError("bookable_delay must be >= 0")
        if self.gamma_page_max < 1 or self.gamma_default_limit < 1:
            raise ConfigurationError("Gamma page sizes must be >= 1")
        positive = {
            "subscribe_timeout": self.subscribe_timeout,
            "keepalive_timeout": self.keepalive_timeout,
            "ping_interval": self.ping_interval,
            "close_timeout": self.close_timeout,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be > 0, not {value}")
        self.faults.check()
        self.chaos.periods()
