"""``pmstore export TABLE --start T --end T --out DIR|URI``: Parquet files, one per UTC day."""

from __future__ import annotations

import argparse
from datetime import date

from pmstore.cli._target import connect, resolve
from pmstore.cli._times import utc_time

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``export`` to the subcommands."""
    from pmstore.export import DEFAULT_BATCH_ROWS, EXPORT_TABLES

    export = sub.add_parser(
        "export",
        parents=[common],
        help="write a table's rows as Parquet, one file per UTC day",
        description="Parquet (zstd) under OUT/TABLE/date=YYYY-MM-DD/part.parquet, OUT a "
        "folder or a URI (s3://bucket/prefix, or any filesystem pyarrow or fsspec knows; "
        "S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, "
        "AWS_PROFILE or ~/.aws, an S3-compatible server from AWS_ENDPOINT_URL); "
        "re-running replaces each day's file with the same content.",
    )
    export.add_argument(
        "table", choices=EXPORT_TABLES, metavar="TABLE", help=", ".join(EXPORT_TABLES)
    )
    export.add_argument(
        "--start", required=True, help="first instant, ISO with zone, or a date (UTC)"
    )
    export.add_argument(
        "--end", required=True, help="end instant (excluded), ISO with zone, or a date"
    )
    export.add_argument(
        "--out", required=True, metavar="DIR|URI", help="output folder or URI (s3://bucket/prefix)"
    )
    export.add_argument(
        "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per Parquet row group"
    )
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, then print one line per day file written."""
    from pmstore.cli._render import QuietBar
    from pmstore.export import export_table

    start, end = utc_time("--start", args.start), utc_time("--end", args.end)
    target = resolve(args)
    with (
        connect(target) as conn,
        QuietBar(desc=f"export {args.table}", unit=" rows", disable=args.no_progress) as bar,
    ):

        def step(rows: int, day_number: int, days: int, day: date) -> None:
            bar.set_postfix_str(f"day {day_number}/{days}: {day.isoformat()}", refresh=False)
            bar.update(rows)

        result = export_table(
            conn,
            args.table,
            start,
            end,
            args.out,
            batch_rows=args.batch_rows,
            progress=step,
        )
    written = [d for d in result.days if d.path is not None]
    print(
        f"exported {result.rows} row(s) of {result.table} from {target.where} into "
        f"{len(written)} day file(s) under {result.root} in {result.seconds:.1f} s"
    )
    for day in written:
        print(f"  {day.day.isoformat()}  {day.rows:>10} row(s)  {day.path}")
    return 0
