"""The client side of a pipelined binary COPY: a batch in, encoded chunks bounded in bytes out.

No I/O: the Writer (or any caller) sends each chunk while this module's
worker thread validates, digests and encodes the next ones. The stream of
one batch:

- the rows are sent in ``order`` (``index_order`` gives (token_id, ts), the
  order of an index led by token_id) or as given;
- chunks are cut by an estimate of their encoded size (``chunk_bytes``,
  default 4 MiB), not by a row count: a chunk of big order books holds few
  rows, a chunk of prices many; when there are several, the first may be
  smaller (``first_chunk_bytes``; the Writer's order books) so that the server
  starts sooner;
- a deferred batch (``OrderbookBatch.from_columns_deferred``: order books
  given with Polymarket's string levels) is parsed chunk by chunk here too,
  each chunk's rows by the worker while the previous chunk is sent;
- while the caller sends chunk k the worker encodes chunk k+1 and validates
  the matching slice of the batch as given (every row once, before the last
  chunk is handed out), and computes the content digest once ``prefetch``
  chunks wait for the sender (or with the last chunk). numpy releases
  the GIL in much of that work, and the caller's thread waits on
  its socket, so on 2 cores the client's work overlaps the server's
  (measured in benchmarks/README.md);
- at most ``prefetch`` encoded chunks wait in memory.

An invalid row raises ``BatchValidationError`` from the stream (the caller
aborts its COPY, so nothing is written); the error is the one
``batch.validated()`` raises: the first problems of the whole batch, with
row numbers as given. All of a stream's work happens in its worker; with a
single chunk it runs inline (a thread would only add its start-up).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from pmstore._pgcopy import PGCOPY_HEADER, PGCOPY_TRAILER
from pmstore._write.encoding import Rows
from pmstore.batches import ColumnBatch, OrderbookBatch
from pmstore.batches._blocks import block_items, block_map, row_blocks
from pmstore.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_PREFETCH",
    "ChunkEncoder",
    "CopyStream",
    "chunk_bounds",
    "index_order",
]

DEFAULT_CHUNK_BYTES: Final = 4 << 20
"""Encoded bytes per chunk (an estimate): ~35,000 price rows, ~1,500 books of 36 levels a side.

Fewer, bigger chunks overlap the worker and the sender better: every hand-over
between the threads costs a GIL switch (benchmarks/README.md, "Chunks of 4 MiB").
A minute batch (8,000 prices, ~1 MB) is one chunk, encoded inline."""
ENCODE_BLOCK: Final = 4_096
"""Rows encoded per encoder call: each of its numpy passes then holds the GIL well under
a millisecond, and the GIL is handed over between blocks (an event loop beside the
Writer waits at most about one block's encoding: ~2-3 ms for prices)."""
DEFAULT_PREFETCH: Final = 4
"""Encoded chunks the worker may hold ready ahead of the sender."""
DEFAULT_FIRST_CHUNK_BYTES: Final = 256 << 10
"""The first chunk's estimated bytes when the batch takes more than one chunk: the sender
(and so the server) waits for it alone, the later ones are made while it works."""

_SAMPLE_ROWS: Final = 256
LEVEL_BYTES: Final = 16
"""A level's bytes in a jsonb side, estimated: ``[0.48,1234.5],`` (Polymarket's prices
and sizes: 3-5 and 1-10 characters)."""
_FIXED_BYTES: Final = 64 + 2 * 3  # field count, lengths, ts, floats; a side's "\x01[]"

ChunkEncoder = Callable[[Any, Rows, bytes], bytes]
"""Encodes a batch's rows (in the given order) after a prefix: ``copy_encoding.price_chunk``..."""


def index_order(batch: ColumnBatch) -> NDArray[np.intp] | None:
    """The row order (token_id, ts) of an index led by token_id, or None when already in it.

    token_id is ordered by code point, the byte order of the ``"C"``
    collation. The distinct tokens are ranked once (a dict and a sort of the
    distinct ones); rows are then sorted by rank with numpy's radix sort when
    each token's rows already rise in time (collectors' minute sweeps), else
    by (rank, ts). About 0.1 s for a million rows of 8,000 distinct token
    strings. Raises ``TypeError`` for tokens that are not comparable text
    (validation names the row).
    """
    n = len(batch)
    if n < 2:
        return None
    tokens = batch.token_id
    seen: dict[Any, None] = {}
    for rows in row_blocks(n):  # blocks: the GIL is handed over between them
        seen.update(dict.fromkeys(block_items(tokens, rows)))
    ranks = dict(zip(sorted(seen), range(len(seen)), strict=True))
    rank = block_map(ranks.__getitem__, tokens, np.int64)
    ts = batch.ts.view(np.int64)
    small = np.int16 if len(ranks) <= np.iinfo(np.int16).max else np.int32
    order: NDArray[np.intp] = np.argsort(rank.astype(small), kind="stable")
    sorted_rank, sorted_ts = rank[order], ts[order]
    if np.any((sorted_rank[1:] == sorted_rank[:-1]) & (sorted_ts[1:] < sorted_ts[:-1])):
        order = np.lexsort((ts, rank))
    if all(np.array_equal(order[r], np.arange(r.start, r.stop)) for r in row_blocks(n)):
        return None  # compared by blocks: no fresh array of n
    return order


def chunk_bounds(
    row_bytes: NDArray[np.int64],
    chunk_bytes: int,
    max_rows: int,
    first_chunk_bytes: int | None = None,
) -> list[int]:
    """Row offsets cutting rows of ``row_bytes`` each into chunks of about ``chunk_bytes``,
    the first of about ``first_chunk_bytes`` when given and the rows take more than one
    chunk.

    Every chunk holds at least one row and at most ``max_rows``. Returns
    ``[0, ..., n]``.
    """
    n = len(row_bytes)
    if n == 0:
        return [0]
    ends = np.cumsum(row_bytes)
    total = int(ends[-1])
    first = chunk_bytes
    if first_chunk_bytes is not None and first_chunk_bytes < chunk_bytes < total:
        first = first_chunk_bytes
    cuts = np.searchsorted(ends, np.arange(first, total, chunk_bytes), "right")
    bounds = [0]
    for cut in [*np.unique(cuts).tolist(), n]:
        while cut - bounds[-1] > max_rows:
            bounds.append(bounds[-1] + max_rows)
        if bounds[-1] < cut <= n:
            bounds.append(cut)
    return bounds


def estimated_row_bytes(batch: ColumnBatch) -> NDArray[np.int64] | int:
    """Each row's encoded size, estimated: text lengths from a sample, levels counted
    (an int when every row gets the same estimate: no array of a million copies)."""
    if isinstance(batch, OrderbookBatch):
        levels = batch.level_counts()  # never parses a deferred batch's levels
        text = _mean_text_bytes(batch.token_id)
        return _FIXED_BYTES + text + LEVEL_BYTES * levels
    text = sum(
        _mean_text_bytes(getattr(batch, name))
        for name in batch.COLUMNS
        if getattr(batch, name).dtype == np.dtype(object)
    )
    return _FIXED_BYTES + text


def _mean_text_bytes(values: NDArray[np.object_]) -> int:
    step = max(len(values) // _SAMPLE_ROWS, 1)
    sample = [v for v in values[::step].tolist() if type(v) is str]
    return int(sum(map(len, sample)) / len(sample)) + 1 if sample else 80


class CopyStream:
    """One batch's binary COPY stream, produced ahead of the sender by a worker thread.

    Iterate it to get the chunks (bytes; the header in the first, the
    trailer last). ``validate`` checks every row (``batch.validated()``'s
    rules) before the last chunk is handed out; ``digest`` computes
    ``batch.content_digest()``, read from ``digest`` once the stream is
    exhausted. ``close()`` (also on leaving a ``with`` block) stops the
    worker; a stream is iterated once. Raises ``ConfigurationError`` for a
    ``chunk_bytes`` or ``prefetch`` below 1; iteration raises
    ``BatchValidationError`` for an invalid row and re-raises whatever the
    encoder raised.
    """

    def __init__(
        self,
        batch: ColumnBatch,
        encode: ChunkEncoder,
        *,
        order: NDArray[np.intp] | None = None,
        validate: bool = True,
        digest: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_chunk_rows: int = 1 << 62,
        prefetch: int = DEFAULT_PREFETCH,
        first_chunk_bytes: int | None = None,
    ) -> None:
        if chunk_bytes < 1 or prefetch < 1 or max_chunk_rows < 1:
            raise ConfigurationError("chunk_bytes, max_chunk_rows and prefetch must be >= 1")
        if first_chunk_bytes is not None and first_chunk_bytes < 1:
            raise ConfigurationError("first_chunk_bytes must be None or >= 1")
        self.batch = batch
        self._encode = encode
        self._order = order
        self._validate = validate
        self._want_digest = digest
        self._digest: str | None = None
        sizes, n = estimated_row_bytes(batch), len(batch)
        if isinstance(sizes, int):  # rows of one size: chunks of the same row count
            rows = max(1, min(max_chunk_rows, chunk_bytes // sizes))
            first = rows
            if first_chunk_bytes is not None and n > rows:
                first = max(1, min(rows, first_chunk_bytes // sizes))
            self.bounds = [0, *range(first, n, rows), n] if n else [0]
        else:
            self.bounds = chunk_bounds(sizes, chunk_bytes, max_chunk_rows, first_chunk_bytes)
        self._queue: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(prefetch)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._used = False
        self.work_seconds = 0.0
        """Time spent producing chunks (validation, digest, encoding), read after the stream."""
        self.starved_seconds = 0.0
        """Time the sender waited for a chunk: where the client, not the server, was the limit."""

    @property
    def chunks(self) -> int:
        """How many chunks of rows the stream has (the trailer not counted)."""
        return max(len(self.bounds) - 1, 0)

    @property
    def digest(self) -> str:
        """``batch.content_digest()``; only after the stream was exhausted with ``digest=True``."""
        if self._digest is None:
            raise RuntimeError("the digest is known once the whole stream has been produced")
        return self._digest

    def __iter__(self) -> Iterator[bytes]:
        if self._used:
            raise RuntimeError("a CopyStream is iterated once")
        self._used = True
        if self.chunks <= 1:
            yield from self._produce()
            return
        self._worker = threading.Thread(target=self._run, name="pmstore-copy-encoder", daemon=True)
        self._worker.start()
        try:
            while True:
                waited = time.perf_counter()
                chunk, error = self._queue.get()
                self.starved_seconds += time.perf_counter() - waited
                if error is not None:
                    raise error
                if chunk is None:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker (it finishes the chunk in hand) and drop what it prepared."""
        self._stop.set()
        worker, self._worker = self._worker, None
        while worker is not None and worker.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # make room: the worker may wait to put
        if worker is not None:
            worker.join()
            # A consumer still waiting in another thread (an async sender cancelled
            # mid-chunk) gets the end of the stream instead of waiting forever.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait((None, None))

    def __enter__(self) -> CopyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for chunk in self._produce():
                # The sender is served: a good time for the digest (a deferred batch's
                # levels are all parsed only with its last chunk).
                if self._queue.full() and not self.batch.deferred:
                    began = time.perf_counter()
                    self._compute_digest()
                    self.work_seconds += time.perf_counter() - began
                self._queue.put((chunk, None))
                if self._stop.is_set():
                    return
            self._queue.put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._queue.put((None, exc))

    def _produce(self) -> Iterator[bytes]:
        bounds = self.bounds
        try:
            for k in range(len(bounds) - 1):
                start, stop = bounds[k], bounds[k + 1]
                began = time.perf_counter()
                chunk = self._encode_rows(start, stop, PGCOPY_HEADER if k == 0 else b"")
                if self._validate:
                    self._check(slice(start, stop))
                if k == len(bounds) - 2:  # the last rows carry the trailer
                    self._compute_digest()
                    chunk += PGCOPY_TRAILER
                self.work_seconds += time.perf_counter() - began
                yield chunk
            if len(bounds) == 1:  # no rows: header and trailer
                self._compute_digest()
                yield PGCOPY_HEADER + PGCOPY_TRAILER
        except Exception:  # the encoder's own checks, or anything else: name the bad row
            if self._validate:
                self._raise_canonical()
            raise

    def _encode_rows(self, start: int, stop: int, prefix: bytes) -> bytes:
        """The tuples of rows ``start:stop`` (of the send order) after ``prefix``, encoded
        ``ENCODE_BLOCK`` rows at a time: the GIL is handed over between two blocks. A
        deferred batch's rows (sent as given) are parsed first, as a part of their own."""
        batch, order, base = self.batch, self._order, 0
        if order is None and batch.deferred:
            batch, base = batch.part(start, stop), start
        parts = [prefix]
        for piece in row_blocks(stop - start, ENCODE_BLOCK):
            a, b = start + piece.start, start + piece.stop
            rows = slice(a - base, b - base) if order is None else order[a:b]
            parts.append(self._encode(batch, rows, b""))
        return b"".join(parts)

    def _compute_digest(self) -> None:
        if self._want_digest and self._digest is None:
            self._digest = self.batch.content_digest()

    def _check(self, rows: slice) -> None:
        """Validate the batch's ``rows`` as given; on a problem raise the whole batch's error."""
        part = self.batch.part(rows.start, rows.stop)  # a deferred batch's: parsed already
        if part.problems(limit=1)[1].any():
            self._raise_canonical()

    def _raise_canonical(self) -> None:
        """Raise ``batch.validated()``'s error when the batch has invalid rows."""
        self.batch.validated()
