"""The ``pmstore`` command line (also ``python -m pmstore``).

    pmstore db start|stop|status|url   the embedded local TimescaleDB
    pmstore migrate [--status] [--rollback N | --rollback-all] [--break-lock]
    pmstore demo [--minutes N] [--tokens N]
    pmstore status
    pmstore ingest PATH... [--rejects FILE] [--jobs N]

Every command uses the server named by ``--dsn``, else ``PMSTORE_DSN``, else
the standard libpq variables (PGHOST, ...), else the embedded server (started
when needed, its data under ``PMSTORE_HOME``). Failures print one line
(``pmstore: error: ...``) and exit non-zero; ``--verbose`` adds the traceback.
Passwords are never printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from pmstore import migrations
from pmstore.dsn import describe, from_environment, normalize, redact, to_yoyo_url
from pmstore.errors import ConfigurationError, PmstoreError
from pmstore.server import EmbeddedServer

__all__ = ["main"]

log = logging.getLogger("pmstore")


@dataclass(frozen=True, slots=True)
class Target:
    """The server a command works on: a DSN, and the embedded server when it is that."""

    dsn: str
    embedded: EmbeddedServer | None

    @property
    def where(self) -> str:
        """A password-free description of the server, for messages."""
        kind = f"embedded server in {self.embedded.home}" if self.embedded else "server"
        return f"{describe(self.dsn)} ({kind})"


def _given_dsn(args: argparse.Namespace) -> str | None:
    if args.dsn:
        return normalize(args.dsn)
    return from_environment()


def _target(args: argparse.Namespace, *, start: bool = True) -> Target:
    dsn = _given_dsn(args)
    if dsn is not None:
        return Target(dsn, None)
    server = EmbeddedServer()
    if start:
        if not server.status().running:
            print(f"starting the embedded TimescaleDB in {server.home} ...", file=sys.stderr)
        server.start()
    return Target(server.dsn(), server)


def _connect(target: Target) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(target.dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise ConfigurationError(f"cannot connect to {describe(target.dsn)}: {first}") from None


# -- db ------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    """`pmstore db ACTION`: manage the embedded server (or show the given one)."""
    dsn = _given_dsn(args)
    if dsn is not None:
        # A server was given: nothing to start or stop, only to check and show.
        target = Target(dsn, None)
        if args.action == "url":
            print(redact(dsn))
            return 0
        with _connect(target) as conn:
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


# -- migrate ---------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """`pmstore migrate`: apply, list, roll back, or unlock the migrations."""
    target = _target(args)
    if args.break_lock:
        migrations.break_lock(target.dsn)
        print(f"migration lock removed on {target.where}")
        return 0
    if args.status:
        state = migrations.status(target.dsn)
        for mid in state.applied:
            print(f"applied  {mid}")
        for mid in state.pending:
            print(f"pending  {mid}")
        print(f"{len(state.applied)} applied, {len(state.pending)} pending on {target.where}")
        return 0
    if args.rollback is not None or args.rollback_all:
        count = None if args.rollback_all else args.rollback
        result = migrations.rollback(target.dsn, count, lock_timeout=args.lock_timeout)
        for mid in result.migrations:
            print(f"rolled back  {mid}")
        print(f"{len(result.migrations)} migration(s) rolled back on {target.where}")
        return 0
    result = migrations.apply(target.dsn, lock_timeout=args.lock_timeout)
    for mid in result.migrations:
        print(f"applied  {mid}")
    for warning in dict.fromkeys(result.warnings):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(result.migrations)} migration(s) applied on {target.where}; schema is current")
    return 0


# -- status ------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """`pmstore status`: print the server's and the schema's state."""
    from pmstore.status import collect, render

    target = _target(args)
    with _connect(target) as conn:
        print(render(collect(conn, target.dsn), target.where))
    return 0


# -- demo --------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """`pmstore demo`: synthetic data through the Writer, with a summary."""
    from pmstore.demo import run_demo

    target = _target(args)
    end = None
    if args.end:
        try:
            end = datetime.fromisoformat(args.end)
        except ValueError:
            raise ConfigurationError(f"--end: not an ISO time: {args.end!r}") from None
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


# -- ingest ------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    """`pmstore ingest PATH...`: stream files of Polymarket payloads in, resumably."""
    from pmstore.ingest import FlushPolicy, ingest_files
    from pmstore.ingest.parallel import ingest_parallel
    from pmstore.ingest.progress import IngestProgress, summary_lines
    from pmstore.writer import Writer

    paths = list(dict.fromkeys(Path(p) for p in args.paths))  # each file once
    for path in paths:
        if not path.is_file():
            raise ConfigurationError(f"no such file: {path}")
    if args.jobs < 1 or args.batch_rows < 1 or args.flush_seconds <= 0:
        raise ConfigurationError("--jobs and --batch-rows must be >= 1, --flush-seconds > 0")
    target = _target(args)
    migrations.apply(target.dsn)
    policy = FlushPolicy(batch_rows=args.batch_rows, flush_seconds=args.flush_seconds)
    rejects = Path(args.rejects) if args.rejects else None
    with IngestProgress(paths, disable=args.no_progress) as bar:
        if args.jobs > 1 and len(paths) > 1:
            summary = ingest_parallel(
                target.dsn, paths, args.jobs, policy=policy, rejects=rejects, progress=bar
            )
        else:
            with Writer(target.dsn) as writer:
                summary = ingest_files(writer, paths, policy=policy, rejects=rejects, progress=bar)
    for line in summary_lines(summary, target.where):
        print(line)
    if rejects is not None:
        print(f"  rejects appended to {rejects}")
    return 0


# -- parser ------------------------------------------------------------------------


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        help="with url: print the postgresql+psycopg:// form for yoyo (PMSTORE_YOYO_URL)",
    )
    db.set_defaults(func=cmd_db)

    mig = sub.add_parser(
        "migrate",
        parents=[common],
        help="apply, inspect or roll back the schema",
        description="The yoyo migrations, under yoyo's lock.",
    )
    group = mig.add_mutually_exclusive_group()
    group.add_argument("--status", action="store_true", help="list applied and pending migrations")
    group.add_argument("--rollback", type=int, metavar="N", help="roll back the last N migrations")
    group.add_argument("--rollback-all", action="store_true", help="roll back every migration")
    group.add_argument(
        "--break-lock", action="store_true", help="remove a lock left by a killed migration"
    )
    mig.add_argument(
        "--lock-timeout",
        type=float,
        default=migrations.DEFAULT_LOCK_TIMEOUT,
        help="seconds to wait for the migration lock (default %(default)s)",
    )
    mig.set_defaults(func=cmd_migrate)

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
    demo.set_defaults(func=cmd_demo)

    status = sub.add_parser(
        "status",
        parents=[common],
        help="state of the server and the schema",
        description="Versions, edition, migrations, features, tables, jobs.",
    )
    status.set_defaults(func=cmd_status)

    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="write files of Polymarket payloads",
        description="JSON lines, JSON arrays or JSON documents, gzip too; streamed, and "
        "resumed where the last run stopped (a grown file is continued).",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument(
        "--rejects", metavar="FILE", help="append rejected payloads here (JSON lines)"
    )
    ingest.add_argument("--jobs", "-j", type=int, default=1, help="files ingested in parallel")
    ingest.add_argument("--batch-rows", type=int, default=50_000, help="records per write batch")
    ingest.add_argument(
        "--flush-seconds", type=float, default=5.0, help="write a batch at least this often"
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)
    return parser


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
        message = redact(str(exc)).strip().splitlines()
        print(f"pmstore: error: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pmstore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a library's own error (yoyo...): still one line
        if args.verbose:
            traceback.print_exc()
        message = redact(str(exc)).strip().splitlines()
        detail = message[0] if message else ""
        print(
            f"pmstore: error: {type(exc).__name__}: {detail} (--verbose for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
