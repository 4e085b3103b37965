"""What the commands share to show their work: progress bars and sizes.

Every bar is a tqdm bar on stderr without tqdm's monitor thread (it only
refreshes a stalled bar; ours are updated as work is done), so a
single-threaded command can fork (``pmstore ingest``'s reader processes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

__all__ = ["QuietBar", "progress_bar", "size_text"]


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
