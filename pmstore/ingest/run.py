"""Ingest one file, or many (in parallel processes with ``jobs``): read, convert, flush.

A file is read from where its cursor says (``pmstore.ingest.cursor``),
payload by payload: parse (orjson, in ``sources``), convert (the columnar
fast path, ``columnar``), collect into a segment, flush the segment by size
or time (``batcher``). Memory holds one segment and one read chunk.

Fault injection for tests: ``PMSTORE_INGEST_FAULT=kill-after-commit:N``
makes the process SIGKILL itself right after its N-th committed transaction.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pmstore.errors import ConfigurationError, PayloadError
from pmstore.ingest.batcher import WRITE_ORDER, FlushPolicy, Segment, Written, flush_segment
from pmstore.ingest.cursor import TRACKED, FileCursor, load_cursor
from pmstore.ingest.pipeline import BackgroundFlusher
from pmstore.ingest.rejects import RejectsFile
from pmstore.ingest.sources import BadLine, Item, Source, open_source
from pmstore.polymarket import Reject
from pmstore.polymarket.columnar import Columns, convert_into
from pmstore.writer import Writer

__all__ = ["FileSummary", "IngestSummary", "Progress", "ingest_file", "ingest_files"]

FAULT_ENV: Final = "PMSTORE_INGEST_FAULT"
PROGRESS_EVERY: Final = 2_048
"""Payloads between progress reports (and flush-time checks)."""

Progress = Callable[[int, int, int], object]
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


def _fault_from_env() -> int | None:
    """The commit count after which to SIGKILL this process (tests), or None."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name != "kill-after-commit" or not count.isdigit():
        raise ConfigurationError(f"{FAULT_ENV}={spec!r}: expected kill-after-commit:N")
    return int(count)


class _Run:
    """One file's ingest: the source, its cursor, the segment being filled."""

    def __init__(
        self,
        writer: Writer,
        source: Source,
        cursor: FileCursor,
        policy: FlushPolicy,
        rejects: RejectsFile | None,
        progress: Progress | None,
        commits: list[int],
        kill_after: int | None,
    ) -> None:
        self.writer, self.source, self.cursor, self.policy = writer, source, cursor, policy
        self.rejects, self.progress = rejects, progress
        self.commits, self.kill_after = commits, kill_after
        self.written = Written()
        self.loaded_positions = dict(cursor.positions)  # the flusher moves cursor's own
        self.summary = FileSummary(str(source.path), cursor.file_id, cursor.format)
        self._bytes_reported = 0
        self._rows_reported = 0
        self._payloads_reported = 0

    def _after_commit(self) -> None:
        self.commits[0] += 1
        if self.kill_after is not None and self.commits[0] >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _report(self) -> None:
        if self.progress is None:
            return
        raw = self.source.raw_bytes_read
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
        flush_segment(
            self.writer, self.cursor, segment, self.rejects, self.written, self._after_commit
        )

    def _flush(self, segment: Segment, flusher: BackgroundFlusher) -> Segment:
        self._count(segment)
        flusher.submit(segment)
        self._report()
        return Segment(segment.end, segment.end, segment.end_line)

    def run(self) -> FileSummary:
        started = time.perf_counter()
        start, start_line = self.cursor.start
        self.summary.resumed = self.cursor.known
        self.summary.resumed_from = start
        caught_up = self.cursor.caught_up
        flusher = BackgroundFlusher(self._write)
        try:
            self._read(start, start_line, caught_up, flusher)
        finally:
            flusher.close()
        self._report()
        s = self.summary
        s.rows, s.duplicates = self.written.rows, self.written.duplicates
        s.batches_already_written = self.written.already_written
        s.incomplete_tail = self.source.incomplete_tail
        s.truncated_gzip = self.source.truncated_gzip
        s.bytes_read = self.source.raw_bytes_read
        s.seconds = time.perf_counter() - started
        s.write_seconds = self.written.seconds
        return s

    def _read(
        self, start: int, start_line: int, caught_up: int, flusher: BackgroundFlusher
    ) -> None:
        """Read from ``start``, converting into segments handed to ``flusher`` when due."""
        segment = Segment(start, start, start_line)
        columns = segment.columns
        policy = self.policy
        countdown = PROGRESS_EVERY
        for item in self.source.items(start, start_line):
            if item.end <= caught_up:  # after a kill: some tables are past this item
                self._catch_up(item, segment)
            else:
                self._convert(item, columns, segment)
            segment.end, segment.end_line = item.end, item.number
            segment.payloads += 1
            countdown -= 1
            if countdown <= 0 or columns.record_count() >= policy.batch_rows:
                countdown = PROGRESS_EVERY
                if policy.due(segment):
                    segment = self._flush(segment, flusher)
                    columns = segment.columns
                else:
                    self._report()
        self._flush(segment, flusher)

    def _convert(self, item: Item, columns: Columns, segment: Segment) -> None:
        before = len(columns.rejects)
        payload = item.payload
        if type(payload) is BadLine:
            columns.rejects.append(
                Reject("not_json", f"not JSON: {payload.error}", payload.text[:120], payload.text)
            )
        else:
            convert_into(payload, columns)
        added = len(columns.rejects) - before
        if added:
            segment.reject_places.extend([item.where] * added)

    def _catch_up(self, item: Item, segment: Segment) -> None:
        """Convert ``item`` but keep only the tables whose cursor is before it."""
        scratch = Columns()
        self._convert(item, scratch, Segment(0, 0, 0))
        tables = {t for t in TRACKED if self.loaded_positions[t] < item.end}
        if "rejects" in tables:
            segment.reject_places.extend([item.where] * len(scratch.rejects))
        segment.columns.extend(scratch, tables)

    def _count(self, segment: Segment) -> None:
        s = self.summary
        s.payloads += segment.payloads
        s.rejects += len(segment.columns.rejects)
        s.reasons.update(f"{r.kind}: {r.reason}" for r in segment.columns.rejects)
        segment.payloads = 0


def ingest_file(
    writer: Writer,
    path: Path,
    *,
    policy: FlushPolicy | None = None,
    rejects: RejectsFile | None = None,
    progress: Progress | None = None,
    _commits: list[int] | None = None,
) -> FileSummary:
    """Ingest one file from where its cursor is; return what was done.

    Raises PayloadError when the file is missing, not JSON, or changed
    (not only grown) since its last run; WriteError / ConnectionLostError
    from the Writer. Everything committed before an error stays committed
    with its cursor: running again continues from there.
    """
    commits = _commits if _commits is not None else [0]
    kill_after = _fault_from_env()
    with open_source(path) as source:
        if not source.identity.strip():
            return FileSummary(str(path), format=source.format)  # empty: nothing to remember
        cursor = load_cursor(writer.connection, source)
        if cursor.format != source.format:
            raise PayloadError(
                f"{path}: was ingested before as {cursor.format}, now reads as {source.format}: "
                "it was rewritten since"
            )
        run = _Run(
            writer, source, cursor, policy or FlushPolicy(), rejects, progress, commits, kill_after
        )
        return run.run()


def ingest_files(
    writer: Writer,
    paths: Sequence[Path],
    *,
    policy: FlushPolicy | None = None,
    rejects: Path | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest ``paths`` one after the other through ``writer`` (see ``ingest_file``).

    ``rejects`` names a file the rejected payload parts are appended to
    (JSON lines, see ``pmstore.ingest.rejects``). Raises PayloadError
    before anything is written when a path is not a file.
    """
    for path in paths:
        if not path.is_file():
            raise PayloadError(f"{path}: no such file")
    summary = IngestSummary()
    commits = [0]
    out = RejectsFile(rejects) if rejects is not None else None
    try:
        for path in paths:
            summary.files.append(
                ingest_file(
                    writer, path, policy=policy, rejects=out, progress=progress, _commits=commits
                )
            )
    finally:
        if out is not None:
            out.close()
    return summary
