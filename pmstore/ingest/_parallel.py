"""``pmstore ingest --jobs N``: several files at once, one process (and Writer) per file.

Each worker process ingests whole files with its own connection, so files
progress independently and each keeps its exactly-once cursor. Progress is
sent to the parent over a queue; rejects are appended by the workers to the
same file (``O_APPEND``, one write per segment: lines never interleave).
The order in which files finish is not fixed: a market found in two files
with different values ends with whichever file was written last.
"""

from __future__ import annotations

import multiprocessing
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from pmstore._write.retention import BeyondRetention
from pmstore._write.retry import DEFAULT_RETRY_FOR
from pmstore.errors import PayloadError
from pmstore.ingest._batcher import FlushPolicy
from pmstore.ingest._rejects import rejects_file
from pmstore.ingest._run import FileSummary, IngestProgress, IngestSummary, ingest_file
from pmstore.writer import Writer

__all__ = ["ingest_parallel"]


def _ingest_one(
    dsn: str,
    path: str,
    policy: FlushPolicy,
    rejects: str | None,
    reports: Any,
    beyond_retention: BeyondRetention,
    retry_for: float | None,
) -> FileSummary:
    def report(raw: int, payloads: int, rows: int) -> None:
        reports.put((raw, payloads, rows))

    with (
        rejects_file(Path(rejects) if rejects is not None else None) as out,
        Writer(dsn, beyond_retention=beyond_retention, retry_for=retry_for) as writer,
    ):
        # A job is a process already: it reads its files itself.
        return ingest_file(
            writer, Path(path), policy=policy, rejects=out, progress=report, reader_process=False
        )


def ingest_parallel(
    dsn: str,
    paths: list[Path],
    jobs: int,
    *,
    policy: FlushPolicy | None = None,
    rejects: Path | None = None,
    progress: IngestProgress | None = None,
    beyond_retention: BeyondRetention = "raise",
    retry_for: float | None = DEFAULT_RETRY_FOR,
) -> IngestSummary:
    """Ingest ``paths`` in up to ``jobs`` processes; summaries in the order of ``paths``.

    ``beyond_retention`` is each worker's Writer option for rows older than
    the retention horizon (see ``pmstore._write.retention``), ``retry_for``
    its retry budget in seconds (see ``pmstore.writer.Writer``).

    Raises the first worker's error (after the other files finished: what
    they committed stays, with its cursors), PayloadError before anything
    is written when a path is not a file. Costs one process start (about
    0.5 s) and one connection per worker.
    """
    for path in paths:
        if not path.is_file():
            raise PayloadError(f"{path}: no such file")
    context = multiprocessing.get_context("spawn")
    summaries: dict[Path, FileSummary] = {}
    errors: list[BaseException] = []
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(max_workers=max(1, min(jobs, len(paths))), mp_context=context) as pool,
    ):
        reports = manager.Queue()
        pending: dict[Future[FileSummary], Path] = {
            pool.submit(
                _ingest_one,
                dsn,
                str(path),
                policy or FlushPolicy(),
                None if rejects is None else str(rejects),
                reports,
                beyond_retention,
                retry_for,
            ): path
            for path in paths
        }
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(reports, progress)
            for future in done:
                path = pending.pop(future)
                try:
                    summaries[path] = future.result()
                except BaseException as exc:
                    errors.append(exc)
        _drain(reports, progress)
    if errors:
        raise errors[0]
    return IngestSummary([summaries[p] for p in paths])


def _drain(reports: Any, progress: IngestProgress | None) -> None:
    while True:
        try:
            raw, payloads, rows = reports.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(raw, payloads, rows)
