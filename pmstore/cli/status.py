"""``pmstore status``: the server's and the schema's state."""

from __future__ import annotations

import argparse

from pmstore.cli._target import connect, resolve

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``status`` to the subcommands."""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="state of the server and the schema",
        description="Versions (and the versions pmstore was tested with), edition, "
        "migrations (drift included), features, tables, jobs.",
    )
    status.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the state; exit 0 (drift is reported, not an error here)."""
    from pmstore.status import collect, render

    target = resolve(args)
    with connect(target) as conn:
        print(render(collect(conn, target.dsn), target.where))
    return 0
