"""Writing segments in a background thread while the next one is read and converted.

The Writer waits on the server for most of a COPY (psycopg releases the GIL
there), so converting the next segment meanwhile overlaps the two. Segments
are written one at a time, in order, by the one thread that uses the
Writer; at most ``depth`` segments wait, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Final

from pmstore.ingest._batcher import Segment

__all__ = ["BackgroundFlusher"]

_STOP: Final = None


class BackgroundFlusher:
    """Runs ``flush(segment)`` for each submitted segment, in order, in one thread.

    ``submit`` blocks while ``depth`` segments wait. The first error raised
    by ``flush`` stops the thread; ``submit`` and ``close`` re-raise it (a
    segment after it is never written, so cursors stay behind it).
    """

    def __init__(self, flush: Callable[[Segment], None], depth: int = 1) -> None:
        self._flush = flush
        self._queue: queue.Queue[Segment | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="pmstore-ingest-writer")
        self._thread.start()

    def _work(self) -> None:
        while True:
            segment = self._queue.get()
            if segment is _STOP:
                return
            if self._error is None:
                try:
                    self._flush(segment)
                except BaseException as exc:
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, segment: Segment) -> None:
        """Queue ``segment`` for writing; raises the writer thread's error, if any."""
        self._raise()
        self._queue.put(segment)

    def close(self) -> None:
        """Write what is queued, stop the thread; raises its error, if any."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()
