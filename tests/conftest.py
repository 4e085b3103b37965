"""The test suite's real TimescaleDB servers and databases.

Server, in this order:
1. ``PMSTORE_TEST_DSN`` (a superuser connection string to any database of it);
2. testcontainers' ``timescale/timescaledb`` image when a Docker engine answers;
3. a throwaway ``pmstore.server.EmbeddedServer`` from the PostgreSQL binaries
   on this machine (``PMSTORE_PG_BINDIR`` picks others).
If none can be had, every database test fails with the reason: never a skip.

The schema is migrated once into a template database; each test module gets
its own copy (``CREATE DATABASE ... TEMPLATE``), which takes a fraction of a
second instead of re-running the migrations.

Payload fixtures: ``tests/fixtures/polymarket`` holds real Polymarket
payloads (each folder's PROVENANCE.txt says where from); ``SHA256SUMS`` lists
every one. ``polymarket_fixture(rel)`` and ``polymarket_fixture_files()``
read only from there and fail (never skip or shrink) when a listed file is
missing or changed. No test reads outside the repository.

Edition-specific fixtures: ``apache_server`` always exists where binaries do
(a Community build started with ``timescaledb.license=apache`` behaves as the
Apache-2 edition); ``community_server`` skips, naming what is missing, when the
suite's server has the Apache-2 edition and no binaries with the Community one
are at hand.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pmstore import migrations
from pmstore.dsn import redact, with_dbname
from pmstore.edition import ServerInfo, server_info
from pmstore.errors import PmstoreError
from pmstore.server import EmbeddedServer, find_bindir

FIXTURES = Path(__file__).resolve().parent / "fixtures"
POLYMARKET_FIXTURES = FIXTURES / "polymarket"
"""Real Polymarket payloads, listed with their SHA-256 in ``SHA256SUMS``."""


def polymarket_manifest() -> dict[str, str]:
    """The listed payload files: relative path -> SHA-256 (``sha256sum`` format)."""
    listing = POLYMARKET_FIXTURES / "SHA256SUMS"
    if not listing.is_file():
        pytest.fail(f"the payload fixtures' listing is missing: {listing}", pytrace=False)
    entries: dict[str, str] = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            entries[rel.strip()] = digest
    return entries


def polymarket_fixture(rel: str) -> Path:
    """The path of payload fixture ``rel`` (e.g. ``nautilus_trader/...json``); fails if absent."""
    path = POLYMARKET_FIXTURES / rel
    if not path.is_file():
        pytest.fail(f"payload fixture missing: {path}", pytrace=False)
    return path


def polymarket_fixture_files() -> list[Path]:
    """Every listed payload fixture, sorted; fails when any is missing."""
    return [polymarket_fixture(rel) for rel in sorted(polymarket_manifest())]


TEMPLATE = "pmstore_template"
RECENT_DAY = (datetime.now(UTC) - timedelta(days=2)).replace(
    hour=0, minute=0, second=0, microsecond=0
)
"""Midnight UTC two days ago: data of that day is inside every retention and compression
horizon, so the Writer accepts it on both editions (older rows are refused by default
where a retention policy exists, see pmstore._write.retention)."""
DATA_TABLES = (
    "price_snapshots",
    "orderbook_snapshots",
    "trades",
    "markets",
    "resolutions",
    "pmstore_ingest_log",
)
_counter = itertools.count()


@dataclass
class TestServer:
    """A server the tests use: how to reach it, what it is, its migrated template."""

    __test__ = False  # not a test class

    admin_dsn: str
    source: str
    info: ServerInfo
    embedded: EmbeddedServer | None = None
    _template_ready: bool = field(default=False, repr=False)

    def dsn(self, dbname: str) -> str:
        return with_dbname(self.admin_dsn, dbname)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if template:
                # Background workers (job scheduler) may hold the template open.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                )
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def migrated_database(self, name: str) -> str:
        """Return a fresh database holding the full schema (a copy of the template)."""
        if not self._template_ready:
            dsn = self.create_database(TEMPLATE)
            migrations.apply(dsn)
            self._template_ready = True
        return self.create_database(name, template=TEMPLATE)


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


PROBE = "pmstore_edition_probe"


def _describe_server(conn_dsn: str, source: str, embedded: EmbeddedServer | None) -> TestServer:
    """Connect, and read the edition in a database where the extension is loaded."""
    with psycopg.connect(conn_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PROBE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PROBE}"')
    try:
        with psycopg.connect(with_dbname(conn_dsn, PROBE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            info = server_info(conn)
    except psycopg.Error as exc:
        pytest.fail(
            f"the test server from {source} has no usable TimescaleDB: {exc}", pytrace=False
        )
    if info.timescaledb_version is None:
        pytest.fail(f"the test server from {source} has no TimescaleDB: {info}", pytrace=False)
    return TestServer(conn_dsn, source, info, embedded)


def tsl_module_installed(bindir: Path) -> bool:
    """Whether the PostgreSQL binaries in ``bindir`` have the TimescaleDB Community edition
    (its ``timescaledb-tsl`` module beside the Apache-2 one)."""
    pg_config = bindir / "pg_config"
    out = subprocess.run(
        [str(pg_config if pg_config.exists() else "pg_config"), "--pkglibdir"],
        capture_output=True,
        text=True,
        check=False,
    )
    return any(Path(out.stdout.strip()).glob("timescaledb-tsl-*.so"))


APACHE_ONLY = (
    "have only the TimescaleDB Apache-2 edition (no timescaledb-tsl module); "
    "PMSTORE_PG_BINDIR can name binaries with the Community edition"
)
"""Why binaries cannot start a Community edition server: ends a skip reason."""


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    """The main test server (see the module docstring for how it is chosen)."""
    env_dsn = os.environ.get("PMSTORE_TEST_DSN")
    if env_dsn:
        try:
            yield _describe_server(env_dsn, "PMSTORE_TEST_DSN", None)
        except psycopg.Error as exc:
            pytest.fail(f"PMSTORE_TEST_DSN: cannot connect: {redact(str(exc))}", pytrace=False)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        image = os.environ.get("PMSTORE_TEST_IMAGE", "timescale/timescaledb:latest-pg15")
        with PostgresContainer(image, driver=None) as container:
            yield _describe_server(container.get_connection_url(), f"docker {image}", None)
        return
    try:
        with EmbeddedServer.throwaway() as embedded:
            yield _describe_server(embedded.dsn("postgres"), "embedded", embedded)
    except PmstoreError as exc:
        pytest.fail(
            f"no TimescaleDB for the tests: {exc}. Run ./dev test (which installs it), "
            "or set PMSTORE_TEST_DSN to a TimescaleDB server.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def apache_server(server: TestServer) -> Iterator[TestServer]:
    """A server behaving as the TimescaleDB Apache-2 edition."""
    if server.info.edition == "apache":
        yield server
        return
    try:
        bindir = server.embedded.bindir if server.embedded else find_bindir()
        with EmbeddedServer.throwaway(bindir=bindir, license="apache") as embedded:
            yield _describe_server(embedded.dsn("postgres"), "embedded (license=apache)", embedded)
    except PmstoreError as exc:
        pytest.fail(
            f"the main test server is {server.info}; an Apache-2 edition server is needed "
            f"too and none could be started: {exc}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def community_server(server: TestServer) -> Iterator[TestServer]:
    """A server with the TimescaleDB Community edition; skips naming what is missing."""
    if server.info.edition == "community":
        yield server
        return
    if server.embedded is None:
        pytest.skip(
            "needs a server with the TimescaleDB Community edition: the suite's server "
            f"({server.source}) is {server.info}, and the suite starts a second server only "
            "from the binaries of an embedded server of its own"
        )
    bindir = server.embedded.bindir
    if not tsl_module_installed(bindir):
        pytest.skip(
            "needs a server with the TimescaleDB Community edition: the suite's binaries in "
            f"{bindir} {APACHE_ONLY}"
        )
    with EmbeddedServer.throwaway(bindir=bindir, license="timescale") as embedded:
        yield _describe_server(embedded.dsn("postgres"), "embedded (license=timescale)", embedded)


def _db_name(request: pytest.FixtureRequest) -> str:
    base = request.node.name.replace(".py", "").replace("[", "_").replace("]", "")
    base = "".join(c if c.isalnum() else "_" for c in base.lower())[:40]
    return f"t_{base}_{next(_counter)}"


@pytest.fixture(scope="module")
def db(server: TestServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a fresh, fully migrated database for this test module."""
    name = _db_name(request)
    yield server.migrated_database(name)
    server.drop_database(name)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection to this module's database, with every data table emptied first."""
    with psycopg.connect(db, autocommit=True) as connection:
        connection.execute("TRUNCATE " + ", ".join(DATA_TABLES))
        yield connection


@pytest.fixture
def empty_db(server: TestServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a fresh database with no schema at all (dropped after the test)."""
    name = _db_name(request)
    yield server.create_database(name)
    server.drop_database(name)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "pmstore test server: PMSTORE_TEST_DSN, else Docker, else embedded "
        "(the server used is printed in the session summary)"
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    info = getattr(terminalreporter.config, "_pmstore_server", None)
    if info:
        terminalreporter.write_line(f"pmstore tests ran on: {info}")


@pytest.fixture(autouse=True)
def _remember_server(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        srv: TestServer = request.getfixturevalue("server")
        request.config._pmstore_server = f"{srv.info} via {srv.source}"  # type: ignore[attr-defined]
