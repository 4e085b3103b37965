"""``pmstore demo``: the live recorder against the simulator, then a short synthetic history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pmstore.cli._target import resolve
from pmstore.cli._times import utc_time
from pmstore.cli._writing import add_write_options

if TYPE_CHECKING:
    from pmstore.cli._render import QuietBar
    from pmstore.demo import DemoReport, HistoryReport, LiveReport
    from pmstore.recorder.health import FeedGap

__all__ = ["ARCHIVE_IN_HOME", "add_parser", "render", "run"]

ARCHIVE_IN_HOME = "demo-archive"
"""On the embedded server, the demo's archive lives in this folder of the server's home, so
that each run carries on from the last (and closes its shutdown gaps)."""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``demo`` to the subcommands."""
    from pmstore import demo as defaults

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the live recorder against the Polymarket simulator, socket to database",
        description="Start the embedded server if needed and migrate. Then (1) run the "
        "Polymarket simulator and `pmstore record` against it for at least --seconds, with "
        "one fault injected mid-run, and report from the database the rows, frames, feed "
        "gaps, reconnects, receipt-to-commit latency and coverage; (2) write --minutes of "
        "synthetic history through the Writer for the hourly candles and compression.",
    )
    live = demo.add_argument_group("stage 1: recording the simulator")
    live.add_argument(
        "--seconds", type=float, default=defaults.DEFAULT_SECONDS,
        help="record at least this long; the run ends once the fault's gap has closed and a "
        f"snapshot boundary has passed since (default {defaults.DEFAULT_SECONDS})",
    )  # fmt: skip
    live.add_argument(
        "--markets", type=int, default=defaults.DEFAULT_MARKETS,
        help=f"simulated markets, two tokens each (default {defaults.DEFAULT_MARKETS})",
    )  # fmt: skip
    live.add_argument(
        "--rate", type=float, default=defaults.DEFAULT_RATE,
        help=f"simulated events per second (default {defaults.DEFAULT_RATE:g})",
    )  # fmt: skip
    live.add_argument(
        "--fault", choices=defaults.FAULTS, default=defaults.DEFAULT_FAULT,
        help="injected a third of the way in: a silent freeze of one socket (PONG still "
        "answered), an abrupt drop, or none (default %(default)s)",
    )  # fmt: skip
    live.add_argument(
        "--snapshot-every", type=float, default=defaults.DEFAULT_SNAPSHOT_EVERY,
        help="seconds between price and order-book snapshots "
        f"(default {defaults.DEFAULT_SNAPSHOT_EVERY:g}, as `pmstore record`)",
    )  # fmt: skip
    live.add_argument(
        "--archive", metavar="DIR",
        help=f"keep the recorder's archive here (default: {ARCHIVE_IN_HOME}/ in the embedded "
        "server's home, else a temporary folder, removed)",
    )  # fmt: skip
    history = demo.add_argument_group("stage 2: synthetic history")
    history.add_argument(
        "--minutes", type=int, default=defaults.DEFAULT_MINUTES,
        help=f"minutes of history, 0: none (default {defaults.DEFAULT_MINUTES})",
    )  # fmt: skip
    history.add_argument(
        "--tokens", type=int, default=defaults.DEFAULT_TOKENS,
        help=f"history tokens per minute (default {defaults.DEFAULT_TOKENS})",
    )  # fmt: skip
    history.add_argument(
        "--end",
        help="end of the history: ISO time with zone, or a date (UTC) "
        "(default: the start of the current hour, UTC)",
    )
    demo.add_argument(
        "--seed", type=int, default=defaults.DEFAULT_SEED,
        help=f"random seed of the simulator and the history (default {defaults.DEFAULT_SEED})",
    )  # fmt: skip
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--force",
        action="store_true",
        help="write into a given server's database even if it already holds data",
    )
    add_write_options(demo)
    demo.set_defaults(func=run)


class _StageBars:
    """One progress bar per stage (``progress(stage, done, total)``), on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.units = {"recording": " s", "history": " min"}
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: QuietBar | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from pmstore.cli._render import QuietBar

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = QuietBar(
                desc=f"demo {stage}", unit=self.units.get(stage, ""), disable=not self.enabled
            )
        assert self.bar is not None
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    """Run the demo on the target server and print its report; 0."""
    from pmstore.demo import run_demo

    target = resolve(args)
    end = utc_time("--end", args.end) if args.end else None
    archive = Path(args.archive) if args.archive else None
    if archive is None and target.embedded is not None:
        archive = target.embedded.home / ARCHIVE_IN_HOME
    bars = _StageBars(not args.no_progress)
    try:
        report = run_demo(
            target.dsn,
            target.where,
            seconds=args.seconds,
            markets=args.markets,
            rate=args.rate,
            fault=args.fault,
            snapshot_every=args.snapshot_every,
            archive=archive,
            minutes=args.minutes,
            tokens=args.tokens,
            seed=args.seed,
            end=end,
            require_empty=target.embedded is None and not args.force,
            progress=bars,
            retry_for=args.retry_for,
        )
    finally:
        bars.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(render(report))
    return 0


def render(report: DemoReport) -> str:
    """``report`` as the summary ``pmstore demo`` prints."""
    from pmstore.cli._render import size_text

    lines = [f"pmstore demo on {report.where}", f"  {report.server}", ""]
    lines += _render_live(report.live)
    if report.history is not None:
        lines += ["", *_render_history(report.history)]
    lines += ["", "tables (rows in the database)"]
    for h in report.status.hypertables:
        lines.append(
            f"  {h.name:<20} {h.rows:>12,} rows  {h.chunks:>3} chunk(s)  "
            f"total {size_text(h.total_bytes):>10}  indexes {size_text(h.index_bytes):>10}"
        )
    for name, rows in report.status.table_rows.items():
        lines.append(f"  {name:<20} {rows:>12,} rows")
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


FAULT_TEXT = {
    "freeze": "silent freeze (data stops, PONG still answered)",
    "drop": "abrupt drop (TCP closed, no close frame)",
}


def _render_live(live: LiveReport) -> list[str]:
    from pmstore.cli._render import duration_text, size_text, utc_text

    archive = f"in {live.archive}" if live.archive else "in a temporary folder (removed)"
    lat = live.latency
    lines = [
        "1. live: `pmstore record` against the Polymarket simulator, socket to database",
        f"  simulator   {live.markets:,} markets ({len(live.tokens):,} tokens), "
        f"{live.rate:g} events/s",
        f"  recorder    {live.sockets} socket(s) of up to {live.shard_size} tokens, snapshots "
        f"every {live.snapshot_every:g} s, silence deadline {live.silence_timeout:g} s "
        "(production 60 s)",
        f"  ran         {live.seconds:.1f} s, {utc_text(live.started)} .. {utc_text(live.stopped)}",
        f"  archived    {live.frames:,} frames verbatim ({live.records:,} records, "
        f"{size_text(live.archive_bytes)} gzip, {live.archive_files} file(s), run "
        f"{live.run}) {archive}",
        f"  committed   receipt to commit p50 {lat.p50:.2f} s, p99 {lat.p99:.2f} s, max "
        f"{lat.max:.2f} s over {lat.frames:,} frames committed live; {live.db_lag:,} "
        "record(s) left for the next run",
        f"  sockets     {live.reconnects} reconnect(s), {live.silences} silence(s), "
        f"{live.connect_failures} failed connect(s), {live.reseed_books} book(s) reseeded "
        "by POST /books",
    ]
    lines.append("  fault       " + _fault_text(live))
    if live.resolved_market:
        lines.append(
            f"  resolved    market {live.resolved_market[:10]}...{live.resolved_market[-4:]} "
            "mid-run (market_resolved on the socket)"
        )
    lines += ["", "  rows of this run in the database"]
    for table, rows in live.rows.items():
        lines.append(f"    {table:<20} {rows:>10,}")
    lines += ["", "  feed gaps of its tokens (feed_gaps)", *_gap_lines(live.feed_gaps)]
    cov = live.coverage
    lines.append("")
    if cov is None:
        lines.append("  coverage    no price snapshot in the run (no boundary passed)")
    else:
        feed = f"; {len(cov.feed_gaps)} feed gap(s) overlap" if cov.feed_gaps is not None else ""
        lines.append(
            f"  coverage    price snapshots of {cov.tokens:,} tokens in {cov.steps} step(s) of "
            f"{duration_text(cov.step.total_seconds())} from {utc_text(cov.start)}: "
            f"{cov.ratio:.2%} covered, {len(cov.gaps)} gap(s), {len(cov.missing_tokens)} "
            f"token(s) without rows{feed}"
        )
    return lines


def _fault_text(live: LiveReport) -> str:
    from pmstore.cli._render import duration_text, utc_text

    if live.fault == "none" or live.fault_at is None:
        return "none injected"
    text = (
        f"{FAULT_TEXT[live.fault]} of one socket ({len(live.fault_tokens)} tokens) at "
        f"{utc_text(live.fault_at)}"
    )
    gaps = live.fault_gaps
    closed = [g.ended_at for g in gaps if g.ended_at is not None]
    if not live.recovered or len(closed) < len(gaps) or not gaps:
        return text + f": {len(gaps)} gap(s), NOT all closed before the end"
    back = (max(closed) - live.fault_at).total_seconds()
    reason = gaps[0].reason
    return text + (
        f": {len(gaps)} {reason} gap(s) opened and closed, fresh books "
        f"{duration_text(back)} after it"
    )


def _gap_lines(gaps: list[FeedGap]) -> list[str]:
    """The feed gaps grouped by reason and state: count, from when, how long."""
    from pmstore.cli._render import duration_text, utc_text

    if not gaps:
        return ["    none"]
    groups: dict[tuple[str, bool], list[FeedGap]] = {}
    for gap in gaps:
        groups.setdefault((gap.reason, gap.ended_at is None), []).append(gap)
    lines = []
    ordered = sorted(groups.items(), key=lambda kv: min(g.started_at for g in kv[1]))
    for (reason, still_open), members in ordered:
        first = min(g.started_at for g in members)
        if still_open:
            lines.append(
                f"    {reason:<16} {len(members):>5} open since {utc_text(first)}"
                + ("  (the next run closes them with fresh books)" if reason == "shutdown" else "")
            )
            continue
        spans = [(g.ended_at - g.started_at).total_seconds() for g in members if g.ended_at]
        lines.append(
            f"    {reason:<16} {len(members):>5} closed, from {utc_text(first)}, lasting "
            f"{duration_text(min(spans))} .. {duration_text(max(spans))}"
        )
    return lines


def _render_history(history: HistoryReport) -> list[str]:
    w = history.writes
    lines = [
        f"2. history: {history.minutes} minute(s) of synthetic data through the Writer, "
        f"{history.tokens:,} tokens a minute from {history.start:%Y-%m-%d %H:%M} UTC",
        f"  price snapshots   {w.prices:>12,} rows",
        f"  order books       {w.orderbooks:>12,} rows",
        f"  trades            {w.trades:>12,} rows ({w.duplicates:,} duplicates skipped)",
        f"  markets           {history.markets:>12,} rows, {history.resolutions} resolutions "
        "(one 50/50)",
    ]
    if w.price_batches_already_written:
        lines.append(
            f"  {w.price_batches_already_written} price batch(es) were already written by an "
            "earlier run"
        )
    lines += [
        f"  wall time         {history.seconds:>12.1f} s for all tables (data generation "
        f"included), {history.real_time_factor:,.0f}x real time",
        f"  price batches     {w.price_rows_per_second:,.0f} rows/s in copy_prices, "
        f"p50 {w.price_latency(50) * 1000:,.1f} ms, "
        f"p99 {w.price_latency(99) * 1000:,.1f} ms a batch",
    ]
    token = history.token
    source = "continuous aggregate" if history.aggregated else "computed live"
    lines += [
        "",
        f"  hourly candles of token {token[:12]}...{token[-6:]} ({source})",
        f"    {'bucket (UTC)':<17} {'open':>7} {'high':>7} {'low':>7} {'close':>7}",
    ]
    for c in history.candles:
        lines.append(
            f"    {c.bucket:%Y-%m-%d %H:%M} {c.open:>7.4f} {c.high:>7.4f} "
            f"{c.low:>7.4f} {c.close:>7.4f}"
        )
    return lines
