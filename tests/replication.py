"""A primary and a hot standby started by the tests: streaming replication on 127.0.0.1.

``replicated_pair(bindir, license)`` starts a throwaway primary
(``pmstore.server.EmbeddedServer``) holding the migrated schema in its
``pmstore`` database, then a standby made from it by ``pg_basebackup`` with
the same binaries (so the same PostgreSQL and TimescaleDB build), run by the
same user as the primary (PostgreSQL refuses root: when the tests run as
root, the primary's data folder tells which user the embedded server uses).
The standby streams from ``replication_port`` (the primary's port, or a
``tests/fault_proxy.PgProxy`` in front of it, so that a test can cut the WAL
stream). Both are stopped and their folders deleted after the block.

Replication is asynchronous for every session (the throwaway servers run with
``synchronous_commit=off``), but the primary names every standby synchronous
(``synchronous_standby_names='*'``), so that ``Pair.replicated()`` can wait
for the standby without polling or sleeping: a commit with
``synchronous_commit=remote_apply`` returns once the standby has replayed
it, and with it every earlier commit; ``pg_last_wal_replay_lsn()`` then
confirms it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pmstore import migrations
from pmstore.errors import ServerError
from pmstore.server import EmbeddedServer

__all__ = ["DATABASE", "Pair", "replicated_pair"]

DATABASE = "pmstore"
"""The database of the pair that holds pmstore's schema (the embedded server's own)."""

BARRIER_TABLE = "pmstore_test_replication_barrier"
REPLAY_TIMEOUT = "60s"
"""How long ``Pair.replicated`` lets the standby take before the test fails (never hangs)."""


@dataclass
class Pair:
    """A primary, its hot standby, and the password both share (a copy of the same cluster)."""

    primary: EmbeddedServer
    standby: EmbeddedServer
    password: str

    def replicated(self) -> str:
        """Return once the standby has replayed every commit made so far; the LSN reached.

        Commits a row on the primary with ``synchronous_commit=remote_apply``
        (which returns once the standby has applied it), then checks with
        ``pg_last_wal_replay_lsn()`` that the standby has replayed past the
        primary's WAL position from before. AssertionError otherwise.
        """
        with psycopg.connect(self.primary.dsn("postgres"), autocommit=True) as conn:
            before = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            conn.execute(f"SET statement_timeout = '{REPLAY_TIMEOUT}'")
            conn.execute("SET synchronous_commit = remote_apply")
            conn.execute(f"INSERT INTO {BARRIER_TABLE} DEFAULT VALUES")
        assert before is not None
        with psycopg.connect(self.standby.dsn("postgres"), autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn",
                (before[0],),
            ).fetchone()
        assert row == (True, True), f"the standby did not replay up to {before[0]}: {row}"
        return str(before[0])

    def promote(self) -> None:
        """Promote the standby; returns once it accepts writes (``pg_promote(wait => true)``)."""
        with psycopg.connect(self.standby.dsn("postgres"), autocommit=True) as conn:
            done = conn.execute("SELECT pg_promote(true, 60)").fetchone()
        assert done == (True,), "the standby was not promoted within 60 s"

    def replication_dsn(self, port: int) -> str:
        """The replication user's connection string to the primary at 127.0.0.1:``port``."""
        return (
            f"host=127.0.0.1 port={port} user={_user(self.primary)} password={self.password} "
            "sslmode=disable gssencmode=disable application_name=pmstore_test_standby"
        )


@contextmanager
def replicated_pair(
    bindir: Path,
    license: str | None,
    *,
    replication_port: Callable[[EmbeddedServer], int] | None = None,
) -> Iterator[Pair]:
    """A migrated primary and its streaming hot standby; both gone after the block.

    ``replication_port(primary)`` gives the port the standby streams from
    (default: the primary's). Raises ServerError (with the server's words)
    when a server or ``pg_basebackup`` fails. Costs an initdb, the
    migrations and a base backup: a few seconds.
    """
    settings = {"synchronous_standby_names": "*"}
    with EmbeddedServer.throwaway(bindir=bindir, license=license, settings=settings) as primary:
        migrations.apply(primary.dsn(DATABASE))
        with psycopg.connect(primary.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {BARRIER_TABLE} (at timestamptz DEFAULT now())")
        password = _password(primary)
        root = Path(tempfile.mkdtemp(prefix="pmstore-standby-"))
        os.chmod(root, 0o755)
        standby = EmbeddedServer(root, bindir=bindir, license=license, durable=False)
        pair = Pair(primary, standby, password)
        try:
            port = primary.port if replication_port is None else replication_port(primary)
            assert port is not None
            _base_backup(pair, port)
            standby.start()
            pair.replicated()  # the standby streams (else this fails, after REPLAY_TIMEOUT)
            yield pair
        finally:
            with suppress(ServerError):
                standby.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)


def _password(server: EmbeddedServer) -> str:
    """The embedded server's generated password (its passfile's one line: host:port:db:user:pw)."""
    return server.passfile.read_text().strip().split(":", 4)[4]


def _user(server: EmbeddedServer) -> str:
    """The superuser named in the embedded server's passfile."""
    return server.passfile.read_text().strip().split(":", 4)[3]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_backup(pair: Pair, port: int) -> None:
    """Fill the standby's home: a base backup of the primary, set to stream from ``port``.

    Lays the home out as ``EmbeddedServer`` does (data, run, port, pgpass),
    so that ``standby.start()`` starts it as it is (no initdb).
    """
    primary, standby = pair.primary, pair.standby
    owner = primary.data_dir.stat()
    as_owner = os.geteuid() == 0 and owner.st_uid != 0
    data, run, log = standby.data_dir, standby.socket_dir, standby.log_file
    data.mkdir(mode=0o700)
    run.mkdir(mode=0o700)
    log.touch()
    if as_owner:
        for path in (data, run, log):
            os.chown(path, owner.st_uid, owner.st_gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", PGPASSWORD=pair.password)
    done = subprocess.run(
        [
            str(primary.bindir / "pg_basebackup"),
            "--pgdata",
            str(data),
            "--dbname",
            pair.replication_dsn(int(primary.port or 0)),
            "--checkpoint=fast",
            "--wal-method=stream",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        user=owner.st_uid if as_owner else None,
        group=owner.st_gid if as_owner else None,
        extra_groups=[] if as_owner else None,
        check=False,
    )
    if done.returncode != 0:
        raise ServerError(f"pg_basebackup failed: {done.stderr.strip()}")
    with (data / "postgresql.auto.conf").open("a") as conf:
        conninfo = pair.replication_dsn(port).replace("'", "''")
        conf.write(f"primary_conninfo = '{conninfo}'\n")
    signal = data / "standby.signal"
    signal.touch()
    if as_owner:
        os.chown(signal, owner.st_uid, owner.st_gid)
    standby_port = _free_port()
    (standby.home / "port").write_text(f"{standby_port}\n")
    standby.passfile.write_text(f"127.0.0.1:{standby_port}:*:{_user(primary)}:{pair.password}\n")
    os.chmod(standby.passfile, 0o600)
