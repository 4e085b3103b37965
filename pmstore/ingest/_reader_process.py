"""Reading a file in a separate process, so the ingesting process only writes.

Reading, parsing and converting are pure Python; in the same process as the
Writer they share one GIL with it, and the writer waits for the GIL after
each of its many socket waits per COPY. :class:`ReaderProcess` runs
``read_segments`` in a child process on its own opened file, builds each segment's COPY
batches there and sends them over a pipe, one segment at a time: the child
is at most one segment ahead of the parent (memory stays bounded), and the
parent writes the segments in order, with their cursors, as it would its
own. Order-book levels cross in their flat form (float arrays), not as Python tuples.

Several children can share one JSON-lines file (``reader=k, readers=n``):
each converts every n-th stretch of it (``reading.read_stretches``) and
:func:`interleaved` hands their segments to the parent in file order, so
the parent writes and resumes exactly as with one.

How the child starts (``default_start_method``): on Linux, while the parent runs a
single thread, it is forked: it starts with the parent's modules imported
(~0.01 s, against ~0.5 s of imports for a spawned one, a sixth of a 200,000
message file's whole ingest here). That is safe there: no other thread can
hold a lock the child would inherit, and the child never touches the
parent's open connection (multiprocessing ends a forked child with
``os._exit``: no finalizer runs, so nothing is sent on the parent's
socket). Elsewhere, or with other threads running (a progress bar's monitor,
an application's pools), it is spawned, a fresh interpreter.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux; elsewhere at
its next send, on the broken pipe), ignores SIGINT (the parent ends it), and
sends an error it raises to the parent, which raises it with its type.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from pmstore.batches import OrderbookBatch
from pmstore.batches._levels import BookLevels
from pmstore.errors import ConfigurationError, IngestError, PayloadError
from pmstore.ingest._batcher import Batches, FlushPolicy, Segment
from pmstore.ingest._cursor import ResumePoint
from pmstore.ingest._reading import Stretches, read_segments, read_stretches
from pmstore.ingest._sources import Format, Source, open_source
from pmstore.polymarket._columnar import Columns

__all__ = ["ReaderProcess", "SourceFacts", "StartMethod", "default_start_method", "interleaved"]

_PR_SET_PDEATHSIG: Final = 1
_POLL_SECONDS: Final = 1.0
_JOIN_SECONDS: Final = 5.0


StartMethod = Literal["fork", "spawn"]
"""How a reader process is started."""


def default_start_method() -> StartMethod:
    """How a reader process starts now: ``"fork"`` on Linux while this process runs one
    thread, else ``"spawn"`` (see the module docstring)."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """What reading a file to its end found out (see ``pmstore.ingest._sources.Source``)."""

    incomplete_tail: int
    truncated_gzip: bool
    raw_bytes_read: int


@dataclass(frozen=True, slots=True)
class _Start:
    """Where and how the child reads: what the parent found in the file and its cursor."""

    path: str
    identity: bytes
    source_format: Format
    resume: ResumePoint
    policy: FlushPolicy
    parent: int
    reader: int
    readers: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class _FlatBooks:
    """An OrderbookBatch's columns with its levels in flat form only (cheap to pickle:
    numpy arrays, no per-level objects); ``batch()`` makes the batch again."""

    ts: NDArray[Any]
    token_id: NDArray[np.object_]
    levels: BookLevels
    spread: NDArray[np.float64]
    midpoint: NDArray[np.float64]

    @classmethod
    def of(cls, batch: OrderbookBatch) -> _FlatBooks | OrderbookBatch:
        """``batch`` in flat form, or ``batch`` itself when it has no flat levels."""
        if batch.levels is None:
            return batch
        return cls(batch.ts, batch.token_id, batch.levels, batch.spread, batch.midpoint)

    def batch(self) -> OrderbookBatch:
        """The OrderbookBatch again (its checks of the flat form; no per-level tuples)."""
        return OrderbookBatch.from_flat(
            self.ts, self.token_id, self.levels, self.spread, self.midpoint
        )


_TOKEN_COLUMNS: Final = ("price_token", "book_token", "trade_token")


def _pack(segment: Segment) -> tuple[Any, ...]:
    """What the parent needs of ``segment``: positions, batches, the other records.

    Each distinct token id becomes one str object first (the decoder made one per
    record): pickle then sends it once and a reference for every other row
    (a third less to pickle, send and rebuild), and the parent hashes it once.
    Costs a dict lookup per record."""
    c = segment.columns
    canon: dict[str, str] = {}
    for name in _TOKEN_COLUMNS:
        tokens = getattr(c, name)
        setattr(c, name, list(map(canon.setdefault, tokens, tokens)))
    return (
        segment.start,
        segment.end,
        segment.end_line,
        segment.payloads,
        segment.reject_places,
        c.price_batch(),
        _FlatBooks.of(c.orderbook_batch()),
        c.trade_batch(),
        c.markets,
        c.resolutions,
        c.rejects,
        c.general_path,
    )


def _unpack(packed: tuple[Any, ...]) -> Segment:
    start, end, end_line, payloads, places, prices, books, trades, markets, res, rejects, slow = (
        packed
    )
    if isinstance(books, _FlatBooks):
        books = books.batch()
    columns = Columns(markets=markets, resolutions=res, rejects=rejects, general_path=slow)
    return Segment(
        start,
        end,
        end_line,
        columns,
        places,
        payloads,
        batches=Batches(prices, books, trades),
    )


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux); exit if it has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc to call: the broken pipe ends it
            pass
    if os.getppid() != parent:
        os._exit(1)


def _send_error(out: Connection, exc: BaseException, path: str) -> None:
    try:
        pickle.loads(pickle.dumps(exc))  # what the parent would fail to rebuild
    except Exception:
        exc = IngestError(f"{path}: reading failed: {type(exc).__name__}: {exc}")
    out.send(("error", exc))


def _child(start: _Start, out: Connection) -> None:
    """The reader process: read ``start.path`` into segments, send them, then the facts."""
    _die_with_parent(start.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            with open_source(Path(start.path), start.limit) as source:
                if (
                    not _same_file(source.identity, start.identity)
                    or source.format != start.source_format
                ):
                    raise PayloadError(
                        f"{start.path}: was replaced while being ingested (its first bytes "
                        "changed): run again"
                    )
                for segment in _segments_of(source, start):
                    out.send(("segment", _pack(segment), source.raw_bytes_read))
                facts = SourceFacts(
                    source.incomplete_tail, source.truncated_gzip, source.raw_bytes_read
                )
            out.send(("done", facts))
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent is gone
        except BaseException as exc:
            _send_error(out, exc, start.path)
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        out.close()


def _same_file(identity: bytes, parents: bytes) -> bool:
    """True when the child opened the file the parent identified: the same first bytes,
    or, for a file smaller than ``sources.IDENTITY_BYTES`` that grew in between, one of the two
    views a prefix of the other (appended to, not rewritten)."""
    return identity.startswith(parents) or parents.startswith(identity)


def _segments_of(source: Source, start: _Start) -> Iterator[Segment]:
    """The segments this child reads: the whole file's, or its share of the stretches."""
    if start.readers == 1:
        return read_segments(source, start.resume, start.policy)
    stretches = Stretches(start.policy, start.readers)
    return read_stretches(source, start.resume, stretches, start.reader)


def _fork_without_gc_copies(process: multiprocessing.process.BaseProcess) -> None:
    """Start a fork-context ``process`` with this process's objects frozen (``gc.freeze``):
    the child's garbage collector then never walks the inherited objects, which would
    copy every page holding them (copy-on-write). Unfrozen here right after the fork."""
    gc.freeze()
    try:
        process.start()
    finally:
        gc.unfreeze()


class ReaderProcess:
    """A child process reading one file into segments for the parent to write.

    Starting it costs a fork (~0.01 s), or a process start and its imports
    (~0.5 s) when spawned (``start_method``: None picks ``default_start_method()``).
    Use as a context manager: leaving ends the child on every path (errors,
    KeyboardInterrupt) and waits for it. ``reader``/``readers``: this child's
    share of a JSON-lines file (see the module docstring); ``limit``: read
    the file as if it ended after that many bytes (``sources.open_source``).
    ``path`` is read from ``resume``; ``identity`` and ``source_format`` are what the
    parent found in it (the child refuses a file replaced since). Raises
    ConfigurationError for a share out of range, or several readers of a file
    that is not JSON lines.
    """

    def __init__(
        self,
        path: Path,
        resume: ResumePoint,
        policy: FlushPolicy,
        *,
        identity: bytes,
        source_format: Format,
        start_method: StartMethod | None = None,
        reader: int = 0,
        readers: int = 1,
        limit: int | None = None,
    ) -> None:
        if not 0 <= reader < readers:
            raise ConfigurationError(
                f"reader {reader} of {readers}: expected 0 <= reader < readers"
            )
        if readers > 1 and source_format != "lines":
            raise ConfigurationError(f"{path}: only a JSON-lines file is read by several processes")
        self.path = path
        self.facts: SourceFacts | None = None
        """What the child found at the end of the file (after ``segments`` ended)."""
        self.start_method: StartMethod = start_method or default_start_method()
        """How the child was started: ``"fork"`` or ``"spawn"``."""
        context = (
            multiprocessing.get_context("fork")
            if self.start_method == "fork"
            else multiprocessing.get_context("spawn")
        )
        self._conn, theirs = context.Pipe(duplex=False)
        spec = _Start(
            str(path),
            identity,
            source_format,
            resume,
            policy,
            parent=os.getpid(),
            reader=reader,
            readers=readers,
            limit=limit,
        )
        self._process = context.Process(
            target=_child, args=(spec, theirs), name="pmstore-ingest-reader", daemon=True
        )
        try:
            if self.start_method == "fork":
                _fork_without_gc_copies(self._process)
            else:
                self._process.start()
        finally:
            theirs.close()  # the child's end: EOF here once the child is gone

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._process.pid

    def segments(self) -> Iterator[tuple[Segment, int]]:
        """Yield each segment (batches built) with the file's raw bytes read so far.

        Raises the child's error with its type (PayloadError etc.), or
        IngestError when the child ended without a word.
        """
        while True:
            message = self._receive()
            if message[0] == "segment":
                yield _unpack(message[1]), message[2]
            elif message[0] == "done":
                self.facts = message[1]
                self._process.join(_JOIN_SECONDS)
                return
            else:
                raise message[1]

    def _receive(self) -> Any:
        while not self._conn.poll(_POLL_SECONDS):
            if not self._process.is_alive() and not self._conn.poll(0):
                self._died()
        try:
            return self._conn.recv()
        except EOFError:
            self._died()

    def _died(self) -> None:
        self._process.join(_JOIN_SECONDS)
        raise IngestError(
            f"{self.path}: the reader process ended unexpectedly "
            f"(exit code {self._process.exitcode})"
        )

    def close(self) -> None:
        """End the child if it still runs and wait for it."""
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(_JOIN_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interleaved(readers: Sequence[ReaderProcess], start: int) -> Iterator[tuple[Segment, int]]:
    """Yield the segments of reader processes sharing one file (``readers=len(readers)``,
    ``reader=k`` for the k-th) in file order from position ``start``: stretch ``j`` from
    reader ``j % n``, until the reader whose turn it is has no more. Each reader's
    ``facts`` are set after.

    Raises what ``ReaderProcess.segments`` raises, or IngestError when the readers
    disagree on the file (a stretch that does not start where the one before ended, or
    one after the end another found); everything yielded before stays valid.
    """
    streams = [reader.segments() for reader in readers]
    turn, expected = 0, start
    for turn in itertools.count():
        item = next(streams[turn % len(streams)], None)
        if item is None:
            break
        if item[0].start != expected:
            raise IngestError(
                f"{readers[0].path}: reader process {turn % len(streams)} of {len(readers)} "
                f"sent a stretch from byte {item[0].start}, where the one before ended at "
                f"{expected} (was the file changed while being read?): run again"
            )
        expected = item[0].end
        yield item
    for k, stream in enumerate(streams):
        if k != turn % len(streams) and next(stream, None) is not None:
            raise IngestError(
                f"{readers[k].path}: reader process {k} of {len(readers)} read past the end "
                "the others found (was the file changed while being read?)"
            )
