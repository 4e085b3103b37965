"""How long a Writer given a DSN keeps reconnecting after a connection loss: its retry budget.

A failover (Patroni promoting a standby, a virtual IP or DNS name moving to
the new primary) leaves no writable server for up to about 30 s. A Writer
whose connection drops, or that finds its server read-only, reconnects and
retries the whole transaction until it succeeds or its budget is spent:

- ``retry_for`` seconds (``DEFAULT_RETRY_FOR``) from the call's first
  failure: no retry starts later (the last wait is cut to end at the
  deadline; the attempt after it may take up to a connect timeout more);
- ``retries`` retries at most (``None``, the default: no count limit);

whichever runs out first; ``retry_for=None`` leaves only the count. The
waits between attempts double from ``backoff`` (``DEFAULT_BACKOFF``) up to
``max_backoff`` (``DEFAULT_MAX_BACKOFF``), and each is drawn between half and
all of that ("equal jitter"), so that writers cut off together do not all
come back in the same instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from pmstore.errors import ConfigurationError

__all__ = ["DEFAULT_BACKOFF", "DEFAULT_MAX_BACKOFF", "DEFAULT_RETRY_FOR", "RetryBudget"]

DEFAULT_RETRY_FOR: Final = 60.0
"""Seconds a Writer keeps retrying after a call's first connection loss: a Patroni-style
failover takes up to ~30 s (its default ``ttl``), so this rides one out with as much again
to spare."""

DEFAULT_BACKOFF: Final = 0.5
"""Seconds of the first wait before a retry (before jitter); each later one doubles."""

DEFAULT_MAX_BACKOFF: Final = 5.0
"""The longest wait between two attempts (before jitter), so that a writer is back within
a few seconds of the new primary's promotion."""

_MAX_DOUBLINGS: Final = 60  # 2**60 x any backoff is past every cap: no float overflow


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """When to retry a transaction after a connection loss, and after how long a wait.

    Raises ConfigurationError for a negative or non-finite setting.
    """

    retry_for: float | None = DEFAULT_RETRY_FOR
    retries: int | None = None
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF

    def __post_init__(self) -> None:
        seconds = (self.backoff, self.max_backoff) + (
            () if self.retry_for is None else (self.retry_for,)
        )
        if any(not math.isfinite(s) or s < 0 for s in seconds) or (
            self.retries is not None and self.retries < 0
        ):
            raise ConfigurationError(
                "retry_for, retries, backoff and max_backoff must be finite and >= 0 "
                f"(retry_for or retries may be None: no limit of that kind), not {self!r}"
            )
        if self.retry_for is None and self.retries is None:
            raise ConfigurationError(
                "retry_for and retries cannot both be None (no limit at all): give a large "
                "retry_for to retry for that long"
            )

    def wait(self, retry: int, failed_for: float, draw: float) -> float | None:
        """Seconds to wait before retry number ``retry`` (1 for the first), or None: give up.

        ``failed_for`` is the time since the call's first failure, ``draw`` a
        uniform random number in [0, 1) that places the wait between half and
        all of its nominal length. Costs nothing.
        """
        if self.retries is not None and retry > self.retries:
            return None
        nominal = min(self.max_backoff, self.backoff * 2.0 ** min(retry - 1, _MAX_DOUBLINGS))
        wait = nominal * (0.5 + draw / 2)
        if self.retry_for is None:
            return wait
        left = self.retry_for - failed_for
        return None if left <= 0 else min(wait, left)

    def __str__(self) -> str:
        """The limits in words, e.g. ``60 s`` or ``3 retries within 60 s``."""
        parts = []
        if self.retries is not None:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.retry_for is not None:
            parts.append(f"{self.retry_for:g} s")
        return " within ".join(parts)
