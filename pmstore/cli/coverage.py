"""``pmstore coverage [TOKEN...] --start T --end T``: gaps in the price snapshots, and the
recorder's feed gaps of those tokens."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from pmstore._read.coverage import DEFAULT_STEP
from pmstore.cli._target import connect, resolve
from pmstore.cli._times import utc_time
from pmstore.errors import ConfigurationError

if TYPE_CHECKING:
    from pmstore.recorder.health import FeedGap

__all__ = ["add_parser", "render_feed_gaps", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``coverage`` to the subcommands."""
    cov = sub.add_parser(
        "coverage",
        parents=[common],
        help="gaps in price snapshots per token",
        description="Runs of steps without a price snapshot, per token, and tokens without "
        "any; by default the tokens of the active markets. Then the live recorder's feed "
        "gaps (feed_gaps) of those tokens that overlap the range: why and when it lost them.",
    )
    cov.add_argument(
        "tokens", nargs="*", metavar="TOKEN", help="token ids (default: active markets')"
    )
    cov.add_argument("--start", required=True, help="first instant, ISO with zone, or a date (UTC)")
    cov.add_argument(
        "--end", required=True, help="end instant (excluded), ISO with zone, or a date"
    )
    cov.add_argument(
        "--step",
        type=float,
        default=DEFAULT_STEP.total_seconds(),
        help="step in seconds (default %(default)s)",
    )
    cov.add_argument(
        "--limit", type=int, default=50, help="gaps, tokens and feed gaps listed (default 50)"
    )
    cov.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the coverage summary, then up to ``--limit`` gaps and tokens without rows."""
    from pmstore._read.coverage import active_market_tokens, coverage

    start, end = utc_time("--start", args.start), utc_time("--end", args.end)
    if args.step <= 0:
        raise ConfigurationError(f"--step must be a positive number of seconds, not {args.step}")
    step = timedelta(seconds=args.step)
    target = resolve(args)
    with connect(target) as conn:
        tokens = list(args.tokens) or active_market_tokens(conn)
        if not tokens:
            raise ConfigurationError("no tokens given and no active market in `markets`")
        report = coverage(conn, tokens, start, end, step)
    print(
        f"coverage of {report.tokens} token(s) over {report.start.isoformat()} .. "
        f"{report.end.isoformat()} in steps of {step} ({report.steps} per token) on "
        f"{target.where}: {report.ratio:.2%} of steps covered, {len(report.gaps)} gap(s), "
        f"{len(report.missing_tokens)} token(s) without rows"
    )
    for gap in report.gaps[: args.limit]:
        print(
            f"  gap  {gap.token_id}  {gap.start.isoformat()} .. {gap.end.isoformat()}  "
            f"{gap.steps} step(s)"
        )
    if len(report.gaps) > args.limit:
        print(f"  ... and {len(report.gaps) - args.limit} more gap(s) (--limit)")
    for token in report.missing_tokens[: args.limit]:
        print(f"  none {token}")
    if len(report.missing_tokens) > args.limit:
        print(f"  ... and {len(report.missing_tokens) - args.limit} more token(s) without rows")
    for line in render_feed_gaps(report.feed_gaps, args.limit):
        print(line)
    return 0


def render_feed_gaps(gaps: list[FeedGap] | None, limit: int) -> list[str]:
    """The feed-gap lines of ``pmstore coverage`` (None: no ``feed_gaps`` table)."""
    from pmstore.cli._render import duration_text, utc_text

    if gaps is None:
        return [
            "feed gaps: not recorded here (no feed_gaps table: migration 0017; "
            "`pmstore migrate` adds it)"
        ]
    still_open = sum(1 for g in gaps if g.ended_at is None)
    lines = [
        f"feed gaps (the recorder's, feed_gaps): {len(gaps)} overlapping the range, "
        f"{still_open} still open"
    ]
    for gap in gaps[:limit]:
        if gap.ended_at is None:
            until = "open"
        else:
            seconds = (gap.ended_at - gap.started_at).total_seconds()
            until = f"{utc_text(gap.ended_at)} ({duration_text(seconds)})"
        lines.append(
            f"  feed {gap.token_id}  {gap.reason:<16} {utc_text(gap.started_at)} .. {until}"
        )
    if len(gaps) > limit:
        lines.append(f"  ... and {len(gaps) - limit} more feed gap(s) (--limit)")
    return lines
