"""``pmstore ingest PATH... [--jobs N]``: stream files of Polymarket payloads in, resumably.

The progress bar counts the files' own bytes (compressed bytes for gzip) against
their total size, and shows payloads (messages) and rows written with their
rates per second; the summary follows the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pmstore import migrations
from pmstore.cli._target import resolve
from pmstore.cli._writing import add_write_options
from pmstore.errors import ConfigurationError

if TYPE_CHECKING:
    from pmstore.ingest import IngestSummary

__all__ = ["IngestBar", "add_parser", "run", "summary_lines"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``ingest`` to the subcommands."""
    from pmstore.ingest import FlushPolicy

    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="write files of Polymarket payloads",
        description="JSON lines, JSON arrays or JSON documents, gzip too; streamed, and "
        "resumed where the last run stopped (a grown file is continued). Archive files of "
        "`pmstore record` are derived by the recorder's own rules (the rows it writes live).",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument(
        "--rejects", metavar="FILE", help="append rejected payloads here (JSON lines)"
    )
    ingest.add_argument("--jobs", "-j", type=int, default=1, help="files ingested in parallel")
    ingest.add_argument(
        "--batch-rows",
        type=int,
        default=FlushPolicy().batch_rows,
        help="records per write batch (default %(default)s)",
    )
    ingest.add_argument(
        "--flush-seconds",
        type=float,
        default=FlushPolicy().flush_seconds,
        help="write a batch at least this often (default %(default)s)",
    )
    ingest.add_argument(
        "--beyond-retention",
        choices=("raise", "write", "skip"),
        default="raise",
        help="rows older than the table's retention horizon (Community edition): refuse the "
        "batch (default), write them anyway (retention drops them at its next run), or skip them",
    )
    ingest.add_argument(
        "--reader-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read and convert in a separate process while this one writes (default: for "
        "files of 32 MiB or more; with --jobs each job reads its files itself)",
    )
    ingest.add_argument(
        "--readers",
        type=int,
        default=None,
        help="reader processes sharing each JSON-lines file, with --reader-process (default: "
        "2 on 2 or more cores, else 1); with 2 or more, batches are cut by file size (about "
        "--batch-rows records each), not by --flush-seconds",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_write_options(ingest)
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Migrate, then stream the files' payloads in; print what was written and rejected."""
    from pmstore.ingest import FlushPolicy, ingest_files
    from pmstore.ingest._parallel import ingest_parallel
    from pmstore.writer import Writer

    paths = list(dict.fromkeys(Path(p) for p in args.paths))  # each file once
    for path in paths:
        if not path.is_file():
            raise ConfigurationError(f"no such file: {path}")
    readers_bad = args.readers is not None and args.readers < 1
    if args.jobs < 1 or args.batch_rows < 1 or readers_bad or args.flush_seconds <= 0:
        raise ConfigurationError(
            "--jobs, --batch-rows and --readers must be >= 1, --flush-seconds > 0"
        )
    from pmstore.recorder import is_archive

    archives = [p for p in paths if is_archive(p)]  # `pmstore record` files: its deriver
    paths = [p for p in paths if p not in archives]
    target = resolve(args)
    migrations.apply(target.dsn)
    if archives:
        _ingest_archives(target.dsn, archives, args.beyond_retention, target.where)
        if not paths:
            return 0
    policy = FlushPolicy(batch_rows=args.batch_rows, flush_seconds=args.flush_seconds)
    rejects = Path(args.rejects) if args.rejects else None
    with IngestBar(paths, disable=args.no_progress) as bar:
        if args.jobs > 1 and len(paths) > 1:
            summary = ingest_parallel(
                target.dsn,
                paths,
                args.jobs,
                policy=policy,
                rejects=rejects,
                progress=bar,
                beyond_retention=args.beyond_retention,
                retry_for=args.retry_for,
            )
        else:
            writer = Writer(
                target.dsn, beyond_retention=args.beyond_retention, retry_for=args.retry_for
            )
            with writer:
                summary = ingest_files(
                    writer,
                    paths,
                    policy=policy,
                    rejects=rejects,
                    progress=bar,
                    reader_process=args.reader_process,
                    readers=args.readers,
                )
    for line in summary_lines(summary, target.where):
        print(line)
    if rejects is not None:
        print(f"  rejects appended to {rejects}")
    return 0


class IngestBar:
    """A bar over the bytes of ``paths``; call it with (bytes, payloads, rows) done.

    It starts no thread (``QuietBar``), so the ingest can fork its reader processes.
    """

    def __init__(self, paths: list[Path], *, disable: bool = False, out: TextIO | None = None):
        from pmstore.cli._render import QuietBar

        total = sum(p.stat().st_size for p in paths if p.is_file())
        self._bar = QuietBar(
            total=total,
            desc="ingest",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=disable,
            file=out or sys.stderr,
            smoothing=0.1,
        )
        self._started = time.monotonic()
        self.payloads = 0
        self.rows = 0

    def __call__(self, raw: int, payloads: int, rows: int) -> None:
        self.payloads += payloads
        self.rows += rows
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.set_postfix_str(
            f"{self.payloads:,} msgs ({self.payloads / elapsed:,.0f}/s), "
            f"{self.rows:,} rows ({self.rows / elapsed:,.0f}/s)",
            refresh=False,
        )
        self._bar.update(raw)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()

    def __enter__(self) -> IngestBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary_lines(summary: IngestSummary, where: str) -> list[str]:
    """The report printed after a run: per file, then per table and the reject reasons."""
    lines = [
        f"ingested {summary.payloads} payload(s) from {len(summary.files)} file(s) into {where}"
    ]
    for f in summary.files:
        rate = f.payloads / f.seconds if f.seconds > 0 else 0.0
        resumed = f", resumed at {f.resumed_from}" if f.resumed else ""
        if f.resumed and not f.payloads:
            lines.append(f"  {f.path}: nothing new since the last run")
            continue
        lines.append(
            f"  {f.path}: {f.format or 'empty'}{resumed}, {f.payloads} payload(s), "
            f"{f.rows_written} row(s), {f.rejects} reject(s), {f.seconds:.1f} s "
            f"({rate:,.0f} payloads/s)"
        )
        if f.incomplete_tail:
            lines.append(
                f"    its last {f.incomplete_tail} byte(s) are an unfinished line, left for "
                "the next run"
            )
        if f.truncated_gzip:
            lines.append("    its gzip stream breaks off (still being written?): read up to there")
        if f.general_path:
            share = f.general_path / f.payloads if f.payloads else 0.0
            lines.append(
                f"    {f.general_path} payload(s) of the hot kinds ({share:.1%}) took the general "
                "path (an unusual field or value; slower, same results)"
            )
    for table, rows in summary.written.items():
        dups = summary.duplicates[table]
        extra = f", {dups} duplicate(s) skipped" if dups else ""
        lines.append(f"  {table:<20} {rows:>8} row(s) written{extra}")
    if summary.batches_already_written:
        lines.append(
            f"  {summary.batches_already_written} batch(es) were already written before: skipped"
        )
    lines.append(f"  rejected: {summary.rejects} payload part(s)")
    for reason, n in summary.reasons.most_common(15):
        lines.append(f"    {n:>5} x {reason}")
    return lines


def _ingest_archives(dsn: str, paths: list[Path], beyond_retention: str, where: str) -> None:
    """Ingest ``pmstore record`` archive files (the recorder's deriver, its cursors)."""
    import asyncio

    from pmstore.recorder import ingest_archives

    summaries = asyncio.run(
        ingest_archives(dsn, paths, beyond_retention=beyond_retention)  # type: ignore[arg-type]
    )
    print(f"recorder archives into {where}:")
    for s in summaries:
        rows = ", ".join(f"{t} {n:,}" for t, n in s.rows.items() if n)
        resumed = f" (resumed at record {s.resumed_from:,})" if s.resumed_from else ""
        print(f"  {s.path}: {s.records:,} records{resumed}; rows: {rows or 'none new'}")
