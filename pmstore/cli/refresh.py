"""``pmstore refresh [--start T] [--end T] [--force] [--pending]``: the hourly aggregates."""

from __future__ import annotations

import argparse

from pmstore.cli._target import connect, resolve
from pmstore.cli._times import utc_time

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``refresh`` to the subcommands."""
    refresh = sub.add_parser(
        "refresh",
        parents=[common],
        help="refresh the hourly aggregates over a range (after bulk work)",
        description="Refresh price_candles_1h and trade_volume_1h over [--start, --end), "
        "a day at a time, never below the retention floor (Community edition; a no-op "
        "on the Apache-2 edition, which computes them live).",
    )
    refresh.add_argument(
        "--start",
        help="ISO time with zone, or a date (UTC) (default: the retention floor / oldest chunk)",
    )
    refresh.add_argument(
        "--end", help="ISO time with zone, or a date (UTC) (default: the current hour)"
    )
    refresh.add_argument(
        "--force", action="store_true", help="re-materialize hours without recorded changes too"
    )
    refresh.add_argument(
        "--pending", action="store_true", help="only drain the queue of touched hours now"
    )
    refresh.add_argument("--no-progress", action="store_true", help="no progress bar")
    refresh.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Refresh the continuous aggregates over the range (or drain the queue); print the report."""
    from pmstore.refresh import refresh_command

    start = utc_time("--start", args.start) if args.start is not None else None
    end = utc_time("--end", args.end) if args.end is not None else None
    with connect(resolve(args)) as conn:
        lines = refresh_command(
            conn,
            start,
            end,
            force=args.force,
            pending_only=args.pending,
            show_progress=not args.no_progress,
        )
    for line in lines:
        print(line)
    return 0
