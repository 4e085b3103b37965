"""EmbeddedServer: the local TimescaleDB pmstore starts itself (a real one, started here)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pmstore import server as server_module
from pmstore.edition import MIN_TIMESCALEDB, parse_version
from pmstore.errors import ServerError
from pmstore.server import (
    EmbeddedServer,
    default_home,
    durable_settings,
    find_bindir,
    memory_bytes,
    shared_buffers,
)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A folder the server's unprivileged user can enter (pytest's tmp_path is 0700 as root)."""
    folder = Path(tempfile.mkdtemp(prefix="pmstore-test-server-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_start_is_idempotent_and_urls_hold_no_password(reachable_dir: Path) -> None:
    home = reachable_dir / "home"
    server = EmbeddedServer(home, durable=False)
    assert not server.status().initialized
    with pytest.raises(ServerError, match="not initialised"):
        server.dsn()
    try:
        server.start()
        first = server.status()
        server.start()
        assert server.status().pid == first.pid and first.running and first.port
        password = (home / "pgpass").read_text().strip().rsplit(":", 1)[1]
        dsn = server.dsn()
        assert password not in dsn and password not in repr(server)
        assert oct((home / "pgpass").stat().st_mode & 0o777) == "0o600"
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT current_setting('shared_preload_libraries'), current_database()"
            ).fetchone()
            assert row == ("timescaledb", "pmstore")
            conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        # Without the passfile the server refuses: the password is really required.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn.replace(f"passfile={home / 'pgpass'}", "passfile=/dev/null"))
        server.stop()
        assert not server.status().running
        server.stop()  # idempotent
        server.start()  # data survives a restart
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
    finally:
        server.stop(mode="immediate")


def test_missing_binaries_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PMSTORE_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(ServerError) as info:
        find_bindir()
    assert "nowhere" in str(info.value) and "PMSTORE_PG_BINDIR" in str(info.value)


def _bindir_with_timescaledb(tmp_path: Path, control: str | None) -> Path:
    """A bindir of the real binaries whose pg_config points at a fake extension tree."""
    real = find_bindir()
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("postgres", "initdb", "pg_ctl"):
        (fake / name).symlink_to(real / name)
    lib = tmp_path / "lib"
    share = tmp_path / "share" / "extension"
    lib.mkdir()
    share.mkdir(parents=True)
    if control is not None:
        (lib / "timescaledb.so").write_bytes(b"")
        (share / "timescaledb.control").write_text(control)
    script = f'case "$1" in --pkglibdir) echo {lib};; --sharedir) echo {share.parent};; esac'
    (fake / "pg_config").write_text(f"#!/bin/sh\n{script}\n")
    (fake / "pg_config").chmod(0o755)
    return fake


def test_missing_timescaledb_is_explained(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "home", bindir=_bindir_with_timescaledb(tmp_path, None))
    assert not server.initialized
    with pytest.raises(ServerError) as info:
        server.start()
    message = str(info.value)
    assert "TimescaleDB is not installed" in message
    assert "scripts/install-timescaledb" in message and "docker" in message.lower()
    assert not server.initialized


def test_too_old_timescaledb_is_refused_naming_the_minimum(tmp_path: Path) -> None:
    control = "comment = 'old'\ndefault_version = '2.9.3'\nmodule_pathname = '$libdir/x'\n"
    server = EmbeddedServer(tmp_path / "home", bindir=_bindir_with_timescaledb(tmp_path, control))
    with pytest.raises(ServerError) as info:
        server.start()
    message = str(info.value)
    assert "TimescaleDB 2.9.3" in message and "too old" in message
    assert f"{MIN_TIMESCALEDB} or newer" in message
    assert not server.initialized


def test_installed_timescaledb_is_recent_enough() -> None:
    version = EmbeddedServer(bindir=find_bindir()).check_timescaledb()
    assert parse_version(version) >= parse_version(MIN_TIMESCALEDB), version


def test_default_home_honours_pmstore_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PMSTORE_HOME", str(tmp_path / "h"))
    assert default_home() == (tmp_path / "h").resolve()
    monkeypatch.delenv("PMSTORE_HOME")
    expected = Path("/var/lib/pmstore") if os.geteuid() == 0 else None
    if expected is not None:
        assert default_home() == expected
    else:
        assert "pmstore" in str(default_home())


def test_start_moves_to_a_free_port_when_its_port_was_taken(reachable_dir: Path) -> None:
    server = EmbeddedServer(reachable_dir / "home", durable=False)
    try:
        server.start()
        old = server.port
        server.stop()
        assert old is not None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind(("127.0.0.1", old))
            squatter.listen()
            server.start()
            assert server.port != old
            with psycopg.connect(server.dsn()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop(mode="immediate")


def test_a_persistent_server_sizes_shared_buffers_from_the_memory(
    reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shared_buffers(24 * 2**30) == "6144MB"  # a quarter
    assert shared_buffers(256 * 2**20) == "128MB"  # never below PostgreSQL's default
    assert shared_buffers(None) == "1GB"
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = reachable_dir / "memory.max"
    monkeypatch.setattr(server_module, "CGROUP_MEMORY_LIMITS", (str(limit),))
    limit.write_text(f"{physical // 2}\n")  # a container's limit below the machine's memory
    assert memory_bytes() == physical // 2
    limit.write_text("max\n")  # cgroup v2: no limit
    assert memory_bytes() == physical
    monkeypatch.undo()
    assert EmbeddedServer(durable=False).settings["shared_buffers"] == "512MB"  # tests: fixed
    megabytes = int(durable_settings()["shared_buffers"].removesuffix("MB"))
    server = EmbeddedServer(reachable_dir / "home")  # persistent: sized from the memory
    try:
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            row = conn.execute(
                "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
            ).fetchone()
        assert row == (megabytes * 2**20,)
    finally:
        server.stop(mode="immediate")
