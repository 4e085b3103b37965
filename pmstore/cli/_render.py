"""What the commands share to show their work: progress bars, sizes, durations and times.

Every bar is a tqdm bar on stderr without tqdm's monitor thread (it only
refreshes a stalled bar; ours are updated as work is done), so a
single-threaded command can fork (``pmstore ingest``'s reader processes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from tqdm import tqdm

__all__ = ["QuietBar", "duration_text", "progress_bar", "size_text", "utc_text"]


class QuietBar(tqdm):  # type: ignore[type-arg]
    """tqdm without its monitor thread, on stderr by default."""

    monitor_interval = 0


@contextmanager
def progress_bar(desc: str, unit: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar shown while the block runs; yields ``step(done, total)`` to move it."""
    with QuietBar(desc=desc, unit=unit, disable=not enabled, file=sys.stderr) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield step


def size_text(n: int | None) -> str:
    """A byte count for people: ``"-"`` for None, else B, kB, MB, GB or TB (base 1024)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def duration_text(seconds: float | None) -> str:
    """A duration for people: ``"-"`` for None, else d, h, min or s."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{seconds:.1f} s"


def utc_text(when: datetime | None) -> str:
    """An aware time as ``YYYY-MM-DD HH:MM:SS.f UTC`` (tenths of a second); ``"-"`` for None."""
    if when is None:
        return "-"
    t = when.astimezone(UTC)
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 100_000} UTC"
