"""``pmstore refresh [--start T] [--end T] [--force] [--pending]``: the hourly aggregates."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pmstore.cli._target import connect, resolve
from pmstore.cli._times import utc_time

if TYPE_CHECKING:
    from pmstore.refresh import RefreshReport

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
    from pmstore.cli._render import progress_bar
    from pmstore.refresh import drain, pending, refresh_range

    start = utc_time("--start", args.start) if args.start is not None else None
    end = utc_time("--end", args.end) if args.end is not None else None
    with connect(resolve(args)) as conn:
        if args.pending:
            before = pending(conn)
            after = drain(conn)
            print(
                f"refresh queue: {before.ranges} range(s) before, {after.ranges} left "
                "(hours above the aggregates' watermark are computed live and wait)"
            )
            return 0
        with progress_bar("refresh", " day", enabled=not args.no_progress) as step:
            report = refresh_range(conn, start, end, force=args.force, progress=step)
    for line in report_lines(report):
        print(line)
    return 0


def report_lines(report: RefreshReport) -> list[str]:
    """``refresh_range``'s report as the lines ``pmstore refresh`` prints."""
    if report.reason is not None:
        return [f"nothing to refresh: {report.reason}"]
    lines = []
    for view, span in report.ranges.items():
        if span is None:
            lines.append(f"{view:<18} nothing in range (after clamping to retention)")
        else:
            lines.append(
                f"{view:<18} refreshed {span[0]:%Y-%m-%d %H:%M} - {span[1]:%Y-%m-%d %H:%M}"
            )
        if view in report.clamped:
            floor = report.clamped[view]
            lines.append(
                f"{'':<18} start raised to {floor:%Y-%m-%d %H:%M}, the retention horizon or "
                "the oldest chunk: refreshing hours without raw rows would delete their candles"
            )
    lines.append(f"{report.pieces} piece(s) in {report.seconds:.1f} s")
    return lines
