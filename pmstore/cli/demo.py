"""``pmstore demo``: synthetic data through the Writer, with a summary."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pmstore.cli._target import resolve
from pmstore.cli._times import utc_time
from pmstore.cli._writing import add_write_options

if TYPE_CHECKING:
    from pmstore.demo import DemoReport

__all__ = ["add_parser", "render", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``demo`` to the subcommands."""
    from pmstore import demo as defaults

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="ingest a synthetic hour of Polymarket data",
        description="Start the embedded server if needed, migrate, generate "
        "and ingest synthetic data, print a summary.",
    )
    demo.add_argument(
        "--minutes",
        type=int,
        default=defaults.DEFAULT_MINUTES,
        help=f"minutes of data (default {defaults.DEFAULT_MINUTES})",
    )
    demo.add_argument(
        "--tokens",
        type=int,
        default=defaults.DEFAULT_TOKENS,
        help=f"tokens per minute (default {defaults.DEFAULT_TOKENS})",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=defaults.DEFAULT_SEED,
        help=f"random seed (default {defaults.DEFAULT_SEED})",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--end",
        help="end of the simulated period: ISO time with zone, or a date (UTC) "
        "(default: the start of the current hour, UTC)",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="write into a given server's database even if it already holds data",
    )
    add_write_options(demo)
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo on the target server and print its report; 0."""
    from pmstore.cli._render import progress_bar
    from pmstore.demo import run_demo

    target = resolve(args)
    end = utc_time("--end", args.end) if args.end else None
    with progress_bar("demo", " min", enabled=not args.no_progress) as step:
        report = run_demo(
            target.dsn,
            target.where,
            minutes=args.minutes,
            tokens=args.tokens,
            seed=args.seed,
            end=end,
            require_empty=target.embedded is None and not args.force,
            progress=step,
            retry_for=args.retry_for,
        )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(render(report))
    return 0


def render(report: DemoReport) -> str:
    """``report`` as the summary ``pmstore demo`` prints."""
    from pmstore.cli._render import size_text

    w = report.writes
    lines = [
        f"pmstore demo on {report.where}",
        f"  {report.server}",
        f"  simulated {report.minutes} minute(s) from {report.start:%Y-%m-%d %H:%M} UTC, "
        f"{report.tokens:,} tokens a minute",
        "",
        "ingest (this run)",
        f"  price snapshots   {w.prices:>12,} rows",
        f"  order books       {w.orderbooks:>12,} rows",
        f"  trades            {w.trades:>12,} rows ({w.duplicates:,} duplicates skipped)",
    ]
    if w.price_batches_already_written:
        lines.append(
            f"  {w.price_batches_already_written} price batch(es) were already written by an "
            "earlier run"
        )
    lines += [
        f"  wall time         {report.seconds:>12.1f} s for all tables (data generation "
        f"included), {report.real_time_factor:,.0f}x real time",
        f"  price batches     {w.price_rows_per_second:,.0f} rows/s in copy_prices, "
        f"p50 {w.price_latency(50) * 1000:,.1f} ms, "
        f"p99 {w.price_latency(99) * 1000:,.1f} ms a batch",
        "",
        "tables (rows in the database)",
    ]
    for h in report.status.hypertables:
        lines.append(
            f"  {h.name:<20} {h.rows:>12,} rows  {h.chunks:>3} chunk(s)  "
            f"total {size_text(h.total_bytes):>10}  indexes {size_text(h.index_bytes):>10}"
        )
    for name, rows in report.status.table_rows.items():
        lines.append(f"  {name:<20} {rows:>12,} rows")
    token = report.token
    source = "continuous aggregate" if report.aggregated else "computed live"
    lines += [
        "",
        f"hourly candles of token {token[:12]}...{token[-6:]} ({source})",
        f"  {'bucket (UTC)':<17} {'open':>7} {'high':>7} {'low':>7} {'close':>7}",
    ]
    for c in report.candles:
        lines.append(
            f"  {c.bucket:%Y-%m-%d %H:%M} {c.open:>7.4f} {c.high:>7.4f} "
            f"{c.low:>7.4f} {c.close:>7.4f}"
        )
    lines.append("")
    prices = next((h for h in report.status.hypertables if h.name == "price_snapshots"), None)
    if prices and prices.before_compression_bytes and prices.after_compression_bytes:
        ratio = prices.before_compression_bytes / prices.after_compression_bytes
        lines.append(
            f"compression of price_snapshots: {size_text(prices.before_compression_bytes)} -> "
            f"{size_text(prices.after_compression_bytes)} ({ratio:.1f}x)"
        )
    else:
        detail = report.compression.detail if report.compression else "not recorded"
        lines.append(f"compression: not available here ({detail})")
    return "\n".join(lines)
