"""``pmstore migrate``: apply, list, roll back or unlock the migrations; report drift."""

from __future__ import annotations

import argparse
import sys

from pmstore import migrations
from pmstore.cli._target import resolve

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``migrate`` to the subcommands."""
    mig = sub.add_parser(
        "migrate",
        parents=[common],
        help="apply, inspect or roll back the schema",
        description="The yoyo migrations shipped inside pmstore, under yoyo's lock. "
        "Refuses to go on when an applied migration's file changed since it was "
        "applied (drift), unless --allow-drift.",
    )
    group = mig.add_mutually_exclusive_group()
    group.add_argument(
        "--status",
        action="store_true",
        help="list applied and pending migrations, and drifted ones",
    )
    group.add_argument("--rollback", type=int, metavar="N", help="roll back the last N migrations")
    group.add_argument("--rollback-all", action="store_true", help="roll back every migration")
    group.add_argument(
        "--break-lock", action="store_true", help="remove a lock left by a killed migration"
    )
    mig.add_argument(
        "--allow-drift",
        action="store_true",
        help="apply even though applied migrations changed since, and take their "
        "current content as the new reference",
    )
    mig.add_argument(
        "--lock-timeout",
        type=float,
        default=migrations.DEFAULT_LOCK_TIMEOUT,
        help="seconds to wait for the migration lock (default %(default)s)",
    )
    mig.set_defaults(func=run)


def _print_status(state: migrations.MigrationStatus, where: str) -> None:
    for mid in state.applied:
        mark = (
            "DRIFTED"
            if mid in state.drifted
            else "applied*"
            if mid in state.unrecorded
            else "applied"
        )
        print(f"{mark:<9}{mid}")
    for mid in state.pending:
        print(f"{'pending':<9}{mid}")
    print(f"{len(state.applied)} applied, {len(state.pending)} pending on {where}")
    if state.unrecorded:
        print(
            f"applied* = no checksum recorded yet ({len(state.unrecorded)}: applied by plain "
            "yoyo); the next `pmstore migrate` records them"
        )
    if state.drifted:
        print(
            f"drift: {', '.join(state.drifted)} changed since applied; `pmstore migrate` "
            "refuses to go on unless --allow-drift"
        )


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; exit 0, or 1 when ``--status`` finds drift."""
    target = resolve(args)
    if args.break_lock:
        migrations.break_lock(target.dsn)
        print(f"migration lock removed on {target.where}")
        return 0
    if args.status:
        state = migrations.status(target.dsn)
        _print_status(state, target.where)
        return 1 if state.drifted else 0
    if args.rollback is not None or args.rollback_all:
        count = None if args.rollback_all else args.rollback
        result = migrations.rollback(target.dsn, count, lock_timeout=args.lock_timeout)
        for mid in result.migrations:
            print(f"rolled back  {mid}")
        print(f"{len(result.migrations)} migration(s) rolled back on {target.where}")
        return 0
    result = migrations.apply(
        target.dsn, lock_timeout=args.lock_timeout, allow_drift=args.allow_drift
    )
    for mid in result.migrations:
        print(f"applied  {mid}")
    for warning in dict.fromkeys(result.warnings):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(result.migrations)} migration(s) applied on {target.where}; schema is current")
    return 0
