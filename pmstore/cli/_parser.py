"""The ``pmstore`` argument parser and ``main``: one-line errors, exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

import psycopg

import pmstore
from pmstore.cli import (
    coverage,
    db,
    demo,
    export,
    ingest,
    migrate,
    record,
    refresh,
    simulate,
    status,
)
from pmstore.dsn import redact
from pmstore.errors import PmstoreError

__all__ = ["build_parser", "main"]

COMMANDS = (db, migrate, demo, status, ingest, record, refresh, export, coverage, simulate)
"""The command modules, in the order ``pmstore --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pmstore`` (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        help="server to use (libpq URL or key=value); default: PMSTORE_DSN, libpq "
        "variables, else the embedded server",
    )
    common.add_argument("--verbose", "-v", action="store_true", help="tracebacks and debug logs")

    parser = argparse.ArgumentParser(
        prog="pmstore",
        description="Polymarket data storage on TimescaleDB.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"pmstore {pmstore.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def _first_line(exc: BaseException) -> str:
    lines = redact(str(exc)).strip().splitlines()
    return lines[0] if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pmstore``; return its exit code (0 ok, 1 error, 2 usage, 3 not running)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Commands print the migrations' warnings themselves, once.
        logging.getLogger("pmstore.migrations").setLevel(logging.ERROR)
        logging.getLogger("pmstore.migrations.lock").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (PmstoreError, psycopg.Error, OSError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"pmstore: error: {_first_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pmstore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a library's own error (yoyo...): still one line
        if args.verbose:
            traceback.print_exc()
        print(
            f"pmstore: error: {type(exc).__name__}: {_first_line(exc)} "
            "(--verbose for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
