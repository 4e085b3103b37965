"""``pmstore ingest PATH... [--jobs N]``: stream files of Polymarket payloads in, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from pmstore import migrations
from pmstore.cli.target import resolve
from pmstore.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``ingest`` to the subcommands."""
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
    ingest.add_argument("--batch-rows", type=int, default=50_000, help="records per write batch")
    ingest.add_argument(
        "--flush-seconds", type=float, default=5.0, help="write a batch at least this often"
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
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Migrate, then stream the files' payloads in; print what was written and rejected."""
    from pmstore.ingest import FlushPolicy, ingest_files
    from pmstore.ingest.parallel import ingest_parallel
    from pmstore.ingest.progress import IngestProgress, summary_lines
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
    with IngestProgress(paths, disable=args.no_progress) as bar:
        if args.jobs > 1 and len(paths) > 1:
            summary = ingest_parallel(
                target.dsn,
                paths,
                args.jobs,
                policy=policy,
                rejects=rejects,
                progress=bar,
                beyond_retention=args.beyond_retention,
            )
        else:
            with Writer(target.dsn, beyond_retention=args.beyond_retention) as writer:
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
