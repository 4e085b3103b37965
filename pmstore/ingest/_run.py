"""Ingest one file, or many (in parallel processes with ``jobs``): read, convert, flush.

A file is read from where its cursor says (``pmstore.ingest._cursor``),
payload by payload: parse (orjson, in ``sources``), convert (the columnar
fast path, ``columnar``), collect into a segment, flush the segment by size
or time (``batcher``). Memory holds one segment and one read chunk.
Reading (``reading``) runs in this process, segments written by a writer
thread (``pipeline``), or for large files in reader processes
(``reader_process``; two share a JSON-lines file by default,
``default_readers``) while this one only writes: then they do not share
one GIL.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pmstore.errors import ConfigurationError, PayloadError
from pmstore.ingest._batcher import WRITE_ORDER, FlushPolicy, Segment, Written, flush_segment
from pmstore.ingest._cursor import FileCursor, load_cursor
from pmstore.ingest._pipeline import BackgroundFlusher
from pmstore.ingest._reader_process import ReaderProcess, SourceFacts, interleaved
from pmstore.ingest._reading import read_segments
from pmstore.ingest._rejects import RejectsFile, rejects_file
from pmstore.ingest._sources import Source, open_source
from pmstore.writer import Writer

__all__ = [
    "FileSummary",
    "IngestProgress",
    "IngestSummary",
    "default_readers",
    "ingest_file",
    "ingest_files",
]

READER_PROCESS_BYTES: Final = 32 << 20
"""Files at least this large (on disk) are read in a reader process by default."""


def default_readers() -> int:
    """Reader processes sharing a JSON-lines file by default: 2 where there are 2 cores or
    more, else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


IngestProgress = Callable[[int, int, int], object]
"""Called with (raw bytes read, payloads, rows) done since the last call."""


@dataclass(slots=True)
class FileSummary:
    """What ingesting one file did."""

    path: str
    file_id: str = ""
    format: str = ""
    resumed: bool = False
    resumed_from: int = 0
    payloads: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_ORDER, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_ORDER, 0))
    batches_already_written: int = 0
    rejects: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    general_path: int = 0
    """Payloads of the hot WebSocket kinds converted by the general (slower) path."""
    incomplete_tail: int = 0
    truncated_gzip: bool = False
    bytes_read: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        """Rows written into all tables."""
        return sum(self.rows.values())


@dataclass(slots=True)
class IngestSummary:
    """What ``ingest_files`` did: per file, and in total."""

    files: list[FileSummary] = field(default_factory=list)

    @property
    def payloads(self) -> int:
        """Payloads read (and converted or rejected) in this run."""
        return sum(f.payloads for f in self.files)

    @property
    def written(self) -> dict[str, int]:
        """Rows written per table."""
        return {t: sum(f.rows[t] for f in self.files) for t in WRITE_ORDER}

    @property
    def duplicates(self) -> dict[str, int]:
        """Rows already stored, skipped, per table (trades)."""
        return {t: sum(f.duplicates[t] for f in self.files) for t in WRITE_ORDER}

    @property
    def batches_already_written(self) -> int:
        """Batches found committed before (a retried transaction)."""
        return sum(f.batches_already_written for f in self.files)

    @property
    def rejects(self) -> int:
        """Payload parts rejected in this run."""
        return sum(f.rejects for f in self.files)

    @property
    def reasons(self) -> Counter[str]:
        """Rejects counted by ``kind: reason``."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.reasons)
        return total


class _Run:
    """One file's ingest: the source, its cursor, the segment being filled."""

    def __init__(
        self,
        writer: Writer,
        source: Source,
        cursor: FileCursor,
        policy: FlushPolicy,
        rejects: RejectsFile | None,
        progress: IngestProgress | None,
    ) -> None:
        self.writer, self.source, self.cursor, self.policy = writer, source, cursor, policy
        self.rejects, self.progress = rejects, progress
        self.written = Written()
        self.resume = cursor.resume_point()  # as loaded: the flusher moves the cursor
        self.summary = FileSummary(str(source.path), cursor.file_id, cursor.format)
        self._bytes_reported = 0
        self._rows_reported = 0
        self._payloads_reported = 0

    def _report(self, raw: int) -> None:
        if self.progress is None:
            return
        raw = max(raw, self._bytes_reported)  # readers sharing a file are not in step
        rows = sum(self.written.rows.values())
        self.progress(
            raw - self._bytes_reported,
            self.summary.payloads - self._payloads_reported,
            rows - self._rows_reported,
        )
        self._bytes_reported, self._rows_reported = raw, rows
        self._payloads_reported = self.summary.payloads

    def _write(self, segment: Segment) -> None:
        """Write ``segment`` (in the flusher's thread, the Writer's only user)."""
        flush_segment(self.writer, self.cursor, segment, self.rejects, self.written)

    def run(self, reader_process: bool, readers: int) -> FileSummary:
        started = time.perf_counter()
        self.summary.resumed = self.cursor.known
        self.summary.resumed_from = self.resume.offset
        facts = self._read_in_children(readers) if reader_process else self._read_here()
        self._report(facts.raw_bytes_read)
        s = self.summary
        s.rows, s.duplicates = self.written.rows, self.written.duplicates
        s.batches_already_written = self.written.already_written
        s.incomplete_tail = facts.incomplete_tail
        s.truncated_gzip = facts.truncated_gzip
        s.bytes_read = facts.raw_bytes_read
        s.seconds = time.perf_counter() - started
        s.write_seconds = self.written.seconds
        return s

    def _read_here(self) -> SourceFacts:
        """Read and convert in this thread; write in a background thread."""
        source = self.source

        def tick() -> None:
            self._report(source.raw_bytes_read)

        flusher = BackgroundFlusher(self._write)
        try:
            for segment in read_segments(source, self.resume, self.policy, tick):
                self._count(segment)
                flusher.submit(segment)
                tick()
        finally:
            flusher.close()
        return SourceFacts(source.incomplete_tail, source.truncated_gzip, source.raw_bytes_read)

    def _read_in_children(self, readers: int) -> SourceFacts:
        """Read and convert in ``readers`` reader processes (one unless JSON lines); write
        here, segment by segment, in file order. Several readers read the file as it was
        when this run opened it (``limit``): what is appended meanwhile is for the next
        run, and every reader sees the same stretches."""
        source = self.source
        n = readers if source.format == "lines" else 1
        with contextlib.ExitStack() as stack:
            pool: list[ReaderProcess] = []
            for k in range(n):
                reader = ReaderProcess(
                    source.path,
                    self.resume,
                    self.policy,
                    identity=source.identity,
                    source_format=source.format,
                    reader=k,
                    readers=n,
                    limit=source.size if n > 1 else None,
                )
                pool.append(stack.enter_context(reader))
            for segment, raw in interleaved(pool, self.resume.offset):
                self._count(segment)
                self._write(segment)
                self._report(raw)
            facts = pool[0].facts
            assert facts is not None  # interleaved() returned: every child sent them
            return facts

    def _count(self, segment: Segment) -> None:
        s = self.summary
        s.payloads += segment.payloads
        s.rejects += len(segment.columns.rejects)
        s.general_path += segment.columns.general_path
        s.reasons.update(f"{r.kind}: {r.reason}" for r in segment.columns.rejects)
        segment.payloads = 0


def ingest_file(
    writer: Writer,
    path: Path,
    *,
    policy: FlushPolicy | None = None,
    rejects: RejectsFile | None = None,
    progress: IngestProgress | None = None,
    reader_process: bool | None = False,
    readers: int | None = None,
) -> FileSummary:
    """Ingest one file from where its cursor is; return what was done.

    ``reader_process``: True reads and converts in a child process while this
    one writes (``pmstore.ingest._reader_process``; faster on large files at
    the cost of a second process's memory); False (the default) in this process
    with a writer thread; None picks the child for files of
    ``READER_PROCESS_BYTES`` or more (what ``pmstore ingest`` does). On
    Linux the child is forked while this process runs one thread; otherwise
    it is spawned, which imports the calling script's main module again: a
    script that passes True or None must keep its top level under
    ``if __name__ == "__main__":``. ``readers`` (with a reader process):
    how many reader processes share a JSON-lines file, each reading every
    ``readers``-th stretch of it (``reading.Stretches``: segments then cut
    by chunk counts, about ``batch_rows`` records each, not by exact
    record counts or by time); None: ``default_readers()``. Other forms
    are read by one. What each choice gains is measured in
    benchmarks/README.md ("ingest"). Raises ConfigurationError when
    ``readers`` < 1.
    Raises PayloadError when the file is missing, not JSON, or changed
    (not only grown) since its last run; WriteError / ConnectionLostError
    from the Writer. Everything committed before an error stays committed
    with its cursor: running again continues from there.
    """
    if readers is None:
        readers = default_readers()
    elif readers < 1:
        raise ConfigurationError(f"readers={readers}: expected at least 1")
    with open_source(path) as source:
        if not source.identity.strip():
            return FileSummary(str(path), format=source.format)  # empty: nothing to remember
        cursor = load_cursor(writer.connection, source)
        if cursor.format != source.format:
            raise PayloadError(
                f"{path}: was ingested before as {cursor.format}, now reads as {source.format}: "
                "it was rewritten since"
            )
        run = _Run(writer, source, cursor, policy or FlushPolicy(), rejects, progress)
        if reader_process is None:
            reader_process = source.size >= READER_PROCESS_BYTES
        return run.run(reader_process, readers)


def ingest_files(
    writer: Writer,
    paths: Sequence[Path],
    *,
    policy: FlushPolicy | None = None,
    rejects: Path | None = None,
    progress: IngestProgress | None = None,
    reader_process: bool | None = False,
    readers: int | None = None,
) -> IngestSummary:
    """Ingest ``paths`` one after the other through ``writer`` (see ``ingest_file``,
    also for ``reader_process`` and ``readers``).

    ``rejects`` names a file the rejected payload parts are appended to
    (JSON lines, see ``pmstore.ingest._rejects``). Raises PayloadError
    before anything is written when a path is not a file.
    """
    for path in paths:
        if not path.is_file():
            raise PayloadError(f"{path}: no such file")
    summary = IngestSummary()
    with rejects_file(rejects) as out:
        for path in paths:
            summary.files.append(
                ingest_file(
                    writer,
                    path,
                    policy=policy,
                    rejects=out,
                    progress=progress,
                    reader_process=reader_process,
                    readers=readers,
                )
            )
    return summary
