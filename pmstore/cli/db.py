"""``pmstore db start|stop|status|url``: the embedded TimescaleDB."""

from __future__ import annotations

import argparse

from pmstore.cli._target import Target, connect, given_dsn
from pmstore.dsn import describe, redact, to_yoyo_url
from pmstore.errors import ConfigurationError
from pmstore.server import EmbeddedServer

__all__ = ["add_parser", "run"]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``db`` to the subcommands."""
    db = sub.add_parser(
        "db",
        parents=[common],
        help="the embedded local TimescaleDB",
        description="Manage the embedded TimescaleDB (data under PMSTORE_HOME).",
    )
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.add_argument(
        "--yoyo",
        action="store_true",
        help="with url: print the postgresql+psycopg:// form for `yoyo --database`",
    )
    db.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Manage the embedded server (or only show the given one)."""
    dsn = given_dsn(args)
    if dsn is not None:
        # A server was given: nothing to start or stop, only to check and show.
        target = Target(dsn, None)
        if args.action == "url":
            print(redact(dsn))  # a given DSN may hold a password: never printed
            return 0
        with connect(target) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"using {target.where}: PostgreSQL {version[0] if version else '?'}, running; "
            f"`pmstore db {args.action}` manages only the embedded server"
        )
        return 0
    server = EmbeddedServer()
    if args.action == "start":
        was_running = server.status().running
        server.start()
        state = "already running" if was_running else "started"
        print(f"embedded TimescaleDB {state}: {describe(server.dsn())}, data in {server.home}")
    elif args.action == "stop":
        was_running = server.status().running
        server.stop()
        print(
            "embedded TimescaleDB stopped"
            if was_running
            else "embedded TimescaleDB was not running"
        )
    elif args.action == "status":
        st = server.status()
        if not st.initialized:
            print(f"embedded TimescaleDB: not initialised (home {server.home}); `pmstore db start`")
            return 3
        state = f"running (pid {st.pid})" if st.running else "stopped"
        print(f"embedded TimescaleDB: {state}, port {st.port}, data in {server.home}")
        return 0 if st.running else 3
    elif args.action == "url":
        if not server.initialized:
            raise ConfigurationError(
                "the embedded server is not initialised: run `pmstore db start`"
            )
        print(to_yoyo_url(server.dsn()) if args.yoyo else server.dsn())
    return 0
