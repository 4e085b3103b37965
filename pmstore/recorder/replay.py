"""``pmstore ingest`` of recorder archive files: the live recorder's deriver, run from disk.

Each archive file starts with the deriver's state (its line 1), so each
file is derived alone, in any order, and gives exactly the rows the live
recorder wrote from it. Cursors are the live recorder's (per file and
table, migration 0012): an ingest after a live run writes only what the run
had not committed, and running it twice writes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pmstore.recorder._sink import CommitInfo, Sink, derive_file
from pmstore.recorder.archive import read_header
from pmstore.recorder.derive import TABLES
from pmstore.writer_async import BeyondRetention

__all__ = ["ArchiveSummary", "ingest_archives"]


@dataclass(slots=True)
class ArchiveSummary:
    """What ingesting one archive file did: records taken from its cursors on, rows written."""

    path: str
    file_id: str
    resumed_from: int = 0
    records: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())


async def ingest_archives(
    dsn: str,
    paths: Sequence[Path],
    *,
    beyond_retention: BeyondRetention = "raise",
    progress: Callable[[CommitInfo], None] | None = None,
) -> list[ArchiveSummary]:
    """Ingest recorder archive files (closed, or a ``.part`` up to its last whole line).

    Raises PayloadError for a file that is not an archive (before anything
    is written), WriteError / ConnectionLostError from the writer; what was
    committed stays committed with its cursors.
    """
    headers = [(path, read_header(path)) for path in paths]
    out: list[ArchiveSummary] = []
    sink = Sink(dsn, on_commit=progress, beyond_retention=beyond_retention)
    try:
        for path, header in headers:
            summary = ArchiveSummary(str(path), header.file_id)
            cursors = (await sink.refresh_cursors([header.file_id]))[header.file_id]
            summary.resumed_from = min(cursors.values())
            before = dict(sink.rows_written)
            for batch in derive_file(path, dict(cursors)):
                await sink.write(batch, from_disk=True)
                summary.records = batch.end - summary.resumed_from
            summary.rows = {t: sink.rows_written[t] - before[t] for t in TABLES}
            out.append(summary)
    finally:
        await sink.aclose()
    return out
