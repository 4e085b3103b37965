"""The server the benchmarks run on, and the database chores around each measurement.

``open_server`` picks it: ``PMSTORE_DSN`` when set, else a throwaway
``EmbeddedServer`` with pmstore's durable settings (fsync off unless asked).
``BenchDB`` holds an admin connection to the benchmark database: it empties
tables between methods, checkpoints, creates the comparison tables (each in
its own schema, as ``<schema>.price_snapshots``, so that the Writer's
unqualified ``COPY price_snapshots`` lands in them through ``search_path``),
and reads back what a method wrote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore.dsn import describe, normalize
from pmstore.edition import ServerInfo, server_info
from pmstore.errors import ServerError
from pmstore.server import EmbeddedServer, durable_settings

Conn = psycopg.Connection[tuple[Any, ...]]

DATA_TABLES = ("price_snapshots", "orderbook_snapshots", "trades", "pmstore_ingest_log")
"""The tables the benchmarks fill and empty (they must be empty at the start)."""

BENCH_SCHEMA_PREFIX = "bench_"
"""Every schema the benchmarks create starts with this; all are dropped at the end."""

SETTINGS_SHOWN = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "wal_compression",
    "wal_buffers",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "maintenance_work_mem",
    "autovacuum",
    "max_worker_processes",
    "max_connections",
    "jit",
    "timescaledb.max_background_workers",
    "timescaledb.license",
)
"""The server settings recorded with every run."""


@dataclass(frozen=True, slots=True)
class Server:
    """Where the benchmarks run: the database's DSN and how the server was chosen."""

    dsn: str
    source: str
    own: bool  # the benchmark's own embedded server: its settings may be changed
    note: str


@contextlib.contextmanager
def open_server(*, fsync: bool) -> Iterator[Server]:
    """Yield ``PMSTORE_DSN``'s database, or a throwaway embedded server's (stopped after)."""
    env = os.environ.get("PMSTORE_DSN", "").strip()
    if env:
        dsn = normalize(env)
        yield Server(dsn, f"PMSTORE_DSN ({describe(dsn)})", False, "the server's own settings")
        return
    home = Path(tempfile.mkdtemp(prefix="pmstore-bench-server-"))
    os.chmod(home, 0o755)  # the server's user (postgres when root) must reach it
    settings = {"fsync": "on" if fsync else "off"}
    server = EmbeddedServer(home, durable=True, settings=settings)
    durable = ", ".join(f"{k}={v}" for k, v in {**durable_settings(), **settings}.items())
    note = f"pmstore's durable embedded-server settings ({durable}); " + (
        "fsync on: durable"
        if fsync
        else "fsync OFF (not crash-safe; WAL is still written, commits are not flushed)"
    )
    try:
        server.start()
        yield Server(server.dsn(), f"throwaway embedded server ({server.bindir})", True, note)
    finally:
        with contextlib.suppress(ServerError):
            server.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Target:
    """A table to load: ``<schema>.<table>``, and a DSN whose search_path finds it first."""

    schema: str
    table: str
    dsn: str
    label: str

    @property
    def qualified(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))


def with_settings(dsn: str, **settings: str) -> str:
    """``dsn`` with server settings given at connection (libpq ``options``; others kept)."""
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["options"] = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return make_conninfo("", **params)


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema, public``."""
    return with_settings(dsn, search_path=f"{schema},public")


class BenchDB:
    """An autocommit admin connection to the benchmark database, and the chores done with it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: Conn = psycopg.connect(dsn, autocommit=True)
        row = self.conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        self.superuser = bool(row and row[0])
        self.can_checkpoint = True

    def close(self) -> None:
        self.conn.close()

    def info(self) -> ServerInfo:
        return server_info(self.conn)

    def settings(self) -> dict[str, str]:
        """The recorded settings, as the server shows them (``SHOW``)."""
        out: dict[str, str] = {}
        for name in SETTINGS_SHOWN:
            row = self.conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
            out[name] = str(row[0]) if row and row[0] is not None else "(unset)"
        row = self.conn.execute(
            "SELECT datcollate FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        out["datcollate"] = str(row[0]) if row else "?"
        return out

    def scalar(self, query: str | sql.SQL | sql.Composed, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def non_empty_tables(self) -> list[str]:
        """The data tables that already hold rows (the benchmarks refuse to truncate them)."""
        found = []
        for table in DATA_TABLES:
            if self.scalar(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            ):
                found.append(table)
        return found

    def reset(self, *targets: Target) -> None:
        """Empty the targets' tables and the ingest log, then checkpoint (when allowed).

        TRUNCATE on a hypertable drops its chunks, so every method starts from
        no chunk at all; the checkpoint keeps one method's dirty pages from
        being flushed during the next one's measurement.
        """
        tables: list[sql.Composable] = [t.qualified for t in targets]
        tables.append(sql.SQL("public.pmstore_ingest_log"))
        self.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
        self.checkpoint()

    def checkpoint(self) -> None:
        if not self.can_checkpoint:
            return
        try:
            self.conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            self.can_checkpoint = False

    def public(self, table: str, label: str) -> Target:
        return Target("public", table, with_search_path(self.dsn, "public"), label)

    def price_table(
        self, schema: str, label: str, *, collation: str, indexes: Sequence[str]
    ) -> Target:
        """Create ``<schema>.price_snapshots`` (a 1-day hypertable, no default index).

        ``collation`` is the token_id collation (an SQL identifier such as
        ``"C"``, or ``default``); each of ``indexes`` is a column list such as
        ``(token_id, ts DESC)``.
        """
        self.conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        self.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        collate = (
            sql.SQL("")
            if collation == "default"
            else sql.SQL(" COLLATE {}").format(sql.Identifier(collation))
        )
        table = sql.SQL("{}.price_snapshots").format(sql.Identifier(schema))
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE {} (ts TIMESTAMPTZ NOT NULL, token_id TEXT{} NOT NULL, "
                "price DOUBLE PRECISION NOT NULL, volume_24h DOUBLE PRECISION)"
            ).format(table, collate)
        )
        self.conn.execute(
            "SELECT create_hypertable(%s::regclass, by_range('ts', INTERVAL '1 day'), "
            "create_default_indexes => false)",
            (f"{schema}.price_snapshots",),
        )
        for columns in indexes:
            self.conn.execute(sql.SQL("CREATE INDEX ON {} ").format(table) + sql.SQL(columns))
        return Target(schema, "price_snapshots", with_search_path(self.dsn, schema), label)

    def table_bytes(self, target: Target) -> tuple[int, int]:
        """(heap bytes, index bytes) of a hypertable, over its chunks."""
        row = self.conn.execute(
            "SELECT coalesce(table_bytes, 0), coalesce(index_bytes, 0) "
            "FROM hypertable_detailed_size(%s::regclass)",
            (f"{target.schema}.{target.table}",),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def index_bytes(self, target: Target) -> int:
        """Bytes of the indexes of a hypertable's chunks (cheap: no TimescaleDB function)."""
        return int(
            self.scalar(
                "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_inherits h "
                "JOIN pg_index i ON i.indrelid = h.inhrelid WHERE h.inhparent = %s::regclass",
                (f"{target.schema}.{target.table}",),
            )
        )

    def wal_lsn(self) -> int:
        return int(self.scalar("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    def drop_bench_schemas(self) -> None:
        rows = self.conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            (BENCH_SCHEMA_PREFIX + "%",),
        ).fetchall()
        for (name,) in rows:
            self.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(str(name))))

    def server_reads_files(self, probe_dir: Path) -> tuple[bool, str]:
        """Whether ``COPY ... FROM '<file>'`` works here (a local server, and the right role)."""
        probe = probe_dir / "probe.csv"
        probe.write_text("1\n")
        probe.chmod(0o644)
        try:
            with self.conn.transaction(force_rollback=True):
                self.conn.execute("CREATE TEMP TABLE bench_probe (x int) ON COMMIT DROP")
                self.conn.execute(
                    sql.SQL("COPY bench_probe FROM {} (FORMAT csv)").format(sql.Literal(str(probe)))
                )
        except psycopg.Error as exc:
            return False, str(exc).strip().splitlines()[0]
        finally:
            probe.unlink(missing_ok=True)
        return True, "the server reads the files itself"
