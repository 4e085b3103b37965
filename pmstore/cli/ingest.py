"""``pmstore ingest PATH...``: write files of Polymarket payloads."""

from __future__ import annotations

import argparse
import sys
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
        description="JSON, JSON arrays or JSON lines, gzip too.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument(
        "--rejects", metavar="FILE", help="write rejected payloads here (JSON lines)"
    )
    ingest.add_argument("--batch-rows", type=int, default=10_000, help="records per write batch")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Migrate, then write the files' payloads; print what was written and rejected."""
    from tqdm import tqdm

    from pmstore.ingest import ingest_files, write_rejects
    from pmstore.writer import Writer

    paths = [Path(p) for p in args.paths]
    for path in paths:
        if not path.is_file():
            raise ConfigurationError(f"no such file: {path}")
    target = resolve(args)
    migrations.apply(target.dsn)
    with (
        Writer(target.dsn) as writer,
        tqdm(desc="ingest", unit=" payloads", disable=args.no_progress, file=sys.stderr) as bar,
    ):
        summary = ingest_files(writer, paths, batch_rows=args.batch_rows, progress=bar.update)
    print(
        f"ingested {summary.payloads} payload(s) from {summary.files} file(s) into {target.where}"
    )
    for table, rows in summary.written.items():
        dups = summary.duplicates[table]
        extra = f", {dups} duplicate(s) skipped" if dups else ""
        print(f"  {table:<20} {rows:>8} row(s) written{extra}")
    if summary.batches_already_written:
        print(f"  {summary.batches_already_written} batch(es) were already written before: skipped")
    print(f"  rejected: {len(summary.rejects)} payload part(s)")
    reasons: dict[str, int] = {}
    for _, reject in summary.rejects:
        key = f"{reject.kind}: {reject.reason}"
        reasons[key] = reasons.get(key, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {n:>5} x {reason}")
    if args.rejects:
        with open(args.rejects, "w", encoding="utf-8") as out:
            write_rejects(summary.rejects, out)
        print(f"  rejects written to {args.rejects}")
    return 0
