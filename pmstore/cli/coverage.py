"""``pmstore coverage [TOKEN...] --start T --end T``: gaps in the price snapshots."""

from __future__ import annotations

import argparse
from datetime import timedelta

from pmstore._read.coverage import DEFAULT_STEP
from pmstore.cli._target import connect, resolve
from pmstore.cli._times import utc_time
from pmstore.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``coverage`` to the subcommands."""
    cov = sub.add_parser(
        "coverage",
        parents=[common],
        help="gaps in price snapshots per token",
        description="Runs of steps without a price snapshot, per token, and tokens without "
        "any; by default the tokens of the active markets.",
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
    cov.add_argument("--limit", type=int, default=50, help="gaps and tokens listed (default 50)")
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
    return 0
