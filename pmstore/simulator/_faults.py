"""Fault switches, timed chaos for the command line, and the sliding-window rate limits."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from pmstore.errors import ConfigurationError

__all__ = ["Chaos", "Faults", "RateWindow"]


@dataclass(slots=True)
class Faults:
    """The simulator's fault switches; change them at any time (``sim.faults.x = ...``).

    Per-socket faults are methods of :class:`~pmstore.simulator.Connection`
    (``freeze``, ``drop``). A suppressed frame is lost, never sent later.
    """

    freeze_all: bool = False
    """Silent freeze of every socket: no data frames, while text ``PING`` still gets
    ``PONG`` and protocol pings go on."""
    maintenance: bool = False
    """Matching-engine maintenance: no events happen (``step`` emits nothing and the
    rate mode pauses); sockets stay open and answer ``PING``. ``Simulator.maintenance``
    sets it for a number of seconds."""
    max_assets_per_socket: int | None = None
    """A socket subscribed to more assets than this gets no snapshot and no data (the
    undocumented ~500 limit); None: no limit, as documented."""
    reject_handshakes: int = 0
    """The next N WebSocket handshakes get HTTP 429 (counts down)."""
    connect_limit: tuple[int, float] | None = None
    """(handshakes, seconds): handshakes beyond that many in a sliding window get HTTP 429."""
    drop_market_resolved: bool = False
    """``market_resolved`` is never sent (Gamma still shows the resolution)."""
    duplicate_rate: float = 0.0
    """Probability that a data frame is sent twice in a row (seeded per socket)."""
    tick_size_change_rate: float = 0.0
    """Probability that a random event is a tick-size change (0.01 <-> 0.001)."""
    legacy_price_change: bool = False
    """``price_change`` in its pre-2025-09-15 shape (``changes[]``, no best bid/ask)."""

    def check(self) -> None:
        """Raise ConfigurationError for a value out of range."""
        for name in ("duplicate_rate", "tick_size_change_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(f"{name} must be within [0, 1], not {value}")
        if self.max_assets_per_socket is not None and self.max_assets_per_socket < 0:
            raise ConfigurationError("max_assets_per_socket must be >= 0")
        if self.reject_handshakes < 0:
            raise ConfigurationError("reject_handshakes must be >= 0")
        if self.connect_limit is not None:
            count, seconds = self.connect_limit
            if count < 0 or seconds <= 0:
                raise ConfigurationError(
                    f"connect_limit must be (>= 0, > 0), not {self.connect_limit}"
                )


@dataclass(frozen=True, slots=True)
class Chaos:
    """Faults on a timer, for ``pmstore simulate`` and demos (tests call the methods instead).

    Every period is in seconds (None: never); the victims are drawn from the
    simulator's seeded RNG among the subscribed sockets.
    """

    freeze_every: float | None = None
    """Every period, one socket goes silent for good (it still answers PING)."""
    drop_every: float | None = None
    """Every period, one socket is dropped without a close frame."""
    maintenance_every: float | None = None
    """Every period, a maintenance silence of ``maintenance_seconds``."""
    maintenance_seconds: float = 90.0
    new_market_every: float | None = None
    """Every period, a market is listed (``new_market``)."""
    resolve_every: float | None = None
    """Every period, an open market is resolved (``market_resolved``)."""

    def periods(self) -> dict[str, float]:
        """The scheduled faults by name and period."""
        named = {
            "freeze": self.freeze_every,
            "drop": self.drop_every,
            "maintenance": self.maintenance_every,
            "new_market": self.new_market_every,
            "resolve": self.resolve_every,
        }
        out = {}
        for name, period in named.items():
            if period is not None:
                if period <= 0:
                    raise ConfigurationError(f"{name} period must be > 0, not {period}")
                out[name] = period
        return out


class RateWindow:
    """A sliding-window limit: at most ``count`` hits in any ``seconds`` (monotonic time)."""

    __slots__ = ("count", "hits", "seconds")

    def __init__(self, count: int, seconds: float) -> None:
        if count < 0 or seconds <= 0:
            raise ConfigurationError(
                f"a rate limit needs count >= 0 and seconds > 0, not {count}/{seconds}"
            )
        self.count = count
        self.seconds = seconds
        self.hits: deque[float] = deque()

    def allow(self, now: float | None = None) -> bool:
        """Count a hit and say whether it is within the limit (a refused hit is not counted)."""
        now = time.monotonic() if now is None else now
        while self.hits and now - self.hits[0] >= self.seconds:
            self.hits.popleft()
        if len(self.hits) >= self.count:
            return False
        self.hits.append(now)
        return True
