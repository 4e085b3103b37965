"""The UTC hours a batch touched, queued in its own transaction for the aggregates' refresh.

``copy_prices`` and ``copy_trades`` record the whole UTC hours their batch
touched (``touched_ranges``) in ``pmstore_refresh_queue`` with
``RECORD_TOUCHED_SQL``, in the batch's transaction (migration 0011): a crash
after COMMIT loses nothing. ``pmstore.refresh`` drains that queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from pmstore._utc import HOUR, UNIX_EPOCH

__all__ = ["MAX_RANGES_PER_BATCH", "RECORD_TOUCHED_SQL", "touched_ranges"]

MAX_RANGES_PER_BATCH: Final = 64
"""At most this many ranges are recorded per batch: beyond it the smallest gaps are merged."""

RECORD_TOUCHED_SQL: Final = """
    INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end)
    SELECT %(table)s::text, r.range_start, r.range_end
    FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS r(range_start, range_end)
"""


def touched_ranges(
    ts: NDArray[np.datetime64], max_ranges: int = MAX_RANGES_PER_BATCH
) -> tuple[list[datetime], list[datetime]]:
    """The whole UTC hours holding ``ts`` (``datetime64[us]``), as merged [start, end) runs.

    Adjacent hours make one run. With more than ``max_ranges`` runs, the
    runs separated by the smallest gaps are merged (refreshing an untouched
    hour costs little: TimescaleDB re-materializes only invalidated data).
    Returns (starts, ends), UTC datetimes, oldest first. Costs a sort of the
    batch's distinct hours.
    """
    if len(ts) == 0:
        return [], []
    hours = np.unique(ts.astype("datetime64[h]").view(np.int64))
    breaks = np.flatnonzero(np.diff(hours) > 1)  # a run ends after these positions
    if len(breaks) >= max_ranges:
        gaps = np.diff(hours)[breaks]
        keep = np.sort(breaks[np.argsort(-gaps, kind="stable")[: max(max_ranges - 1, 0)]])
        breaks = keep
    starts_at = np.concatenate(([0], breaks + 1))
    ends_at = np.concatenate((breaks, [len(hours) - 1]))
    starts = [UNIX_EPOCH + HOUR * int(h) for h in hours[starts_at]]
    ends = [UNIX_EPOCH + HOUR * (int(h) + 1) for h in hours[ends_at]]
    return starts, ends
