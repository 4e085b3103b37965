"""``pmstore demo``: synthetic data through the Writer, with a summary."""

from __future__ import annotations

import argparse
from datetime import datetime

from pmstore.cli._target import resolve
from pmstore.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``demo`` to the subcommands."""
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="ingest a synthetic hour of Polymarket data",
        description="Start the embedded server if needed, migrate, generate "
        "and ingest synthetic data, print a summary.",
    )
    demo.add_argument("--minutes", type=int, default=60, help="minutes of data (default 60)")
    demo.add_argument("--tokens", type=int, default=8000, help="tokens per minute (default 8000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--end",
        help="end of the simulated period, ISO time with zone "
        "(default: the start of the current hour, UTC)",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="write into a given server's database even if it already holds data",
    )
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo on the target server; its exit code."""
    from pmstore.demo import run_demo

    target = resolve(args)
    end = None
    if args.end:
        try:
            end = datetime.fromisoformat(args.end)
        except ValueError as exc:
            raise ConfigurationError(f"--end: not an ISO time: {args.end!r}") from exc
    return run_demo(
        target.dsn,
        target.where,
        minutes=args.minutes,
        tokens=args.tokens,
        seed=args.seed,
        progress=not args.no_progress,
        end=end,
        require_empty=target.embedded is None and not args.force,
    )
