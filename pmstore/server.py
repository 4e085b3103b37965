"""EmbeddedServer: a local PostgreSQL + TimescaleDB that pmstore starts itself.

Used by ``pmstore db ...`` and ``pmstore demo`` when no server is given, and
by the test suite as its throwaway server. It runs the PostgreSQL binaries
installed on the machine (``pg_config --bindir``), or any others given by
``PMSTORE_PG_BINDIR`` (e.g. a hand-built Community edition), with
``shared_preload_libraries=timescaledb``; it checks first that those binaries
have TimescaleDB ``MIN_TIMESCALEDB`` or newer.

Layout of a server's home folder::

    home/data/      PGDATA (owned by the server's user)
    home/run/       the Unix socket (mode 0700)
    home/pgpass     the generated password, as a libpq passfile (mode 0600)
    home/server.log the server's log

The server listens on 127.0.0.1 at a free port (chosen at init and kept) with
scram-sha-256 authentication; the password lives only in ``pgpass``, which
the connection URL names with libpq's ``passfile`` parameter, so URLs never
contain it. PostgreSQL refuses to run as root: when pmstore runs as root the
server runs as an unprivileged user (``postgres`` if it exists, else a
``pmstore`` system user created on first use).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import platformdirs

from pmstore.dsn import redact, redact_error
from pmstore.edition import MIN_TIMESCALEDB, parse_version
from pmstore.errors import ServerError

__all__ = [
    "DURABLE_SETTINGS",
    "THROWAWAY_SETTINGS",
    "EmbeddedServer",
    "ServerStatus",
    "default_home",
    "durable_settings",
    "find_bindir",
    "memory_bytes",
    "shared_buffers",
]

SUPERUSER = "pmstore"
DATABASE = "pmstore"
INSTALL_HINT = (
    "install it with `sudo scripts/install-timescaledb` from the pmstore checkout "
    "(builds Debian's TimescaleDB source package against the installed PostgreSQL), "
    "or run TimescaleDB in Docker (docker run -d -p 5432:5432 -e POSTGRES_PASSWORD=... "
    "timescale/timescaledb:latest-pg15) and point pmstore at it with PMSTORE_DSN"
)

DURABLE_SETTINGS: Mapping[str, str] = {
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "timescaledb.telemetry_level": "off",
    "max_connections": "50",
    # TimescaleDB's jobs (7 policies here) each need a background worker.
    "max_worker_processes": "16",
    "timescaledb.max_background_workers": "8",
}
"""Settings of a persistent embedded server (durable: fsync stays on), but for
``shared_buffers``, which ``durable_settings`` sizes from the machine's memory."""

MIN_SHARED_BUFFERS_MB: Final = 128
"""The least ``shared_buffers`` a persistent server gets (PostgreSQL's own default)."""

CGROUP_MEMORY_LIMITS: Final = (
    "/sys/fs/cgroup/memory.max",  # cgroup v2
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
)
"""Where a container's memory limit is read (``memory_bytes``)."""

THROWAWAY_SETTINGS: Mapping[str, str] = {
    "shared_buffers": "512MB",
    **DURABLE_SETTINGS,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timescaledb.max_background_workers": "0",
}
"""Settings of a throwaway (test) server: nothing is kept, so nothing is synced."""


def memory_bytes() -> int | None:
    """The memory the server may use: physical memory, or the limit of the cgroup at the
    root of this process's view (a container's) where lower; None when neither is known
    (a limit set on a systemd slice above that root is not seen). Costs a few small
    file reads."""
    known: list[int] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if physical > 0:
            known.append(physical)
    for limit_file in CGROUP_MEMORY_LIMITS:
        with contextlib.suppress(OSError):
            text = Path(limit_file).read_text().strip()
            if text.isdigit() and int(text) > 0:  # cgroup v2 says "max" when unlimited
                known.append(int(text))
    return min(known) if known else None


def shared_buffers(memory: int | None) -> str:
    """``shared_buffers`` for a persistent server on ``memory`` bytes: a quarter of it, as
    PostgreSQL's documentation suggests for a database server (and timescaledb-tune
    sets), at least ``MIN_SHARED_BUFFERS_MB``; 1GB when the memory is unknown."""
    if memory is None:
        return "1GB"
    return f"{max(MIN_SHARED_BUFFERS_MB, memory // 4 // 2**20)}MB"


def durable_settings() -> dict[str, str]:
    """The settings of a persistent embedded server on this machine: ``DURABLE_SETTINGS``
    and ``shared_buffers`` from ``memory_bytes``. A day's chunk of price snapshots and its
    index (~3.7 GB at 11.5M rows) then stay in the server's cache on a machine of 16 GB
    or more: reads of it (coverage, panels) do not go through the OS cache page by page,
    and the recorder's inserts, spread over every token's index pages, do not evict each
    other."""
    return {"shared_buffers": shared_buffers(memory_bytes()), **DURABLE_SETTINGS}


def default_home() -> Path:
    """Return the embedded server's home: ``$PMSTORE_HOME``, else a per-user data folder.

    As root the default is ``/var/lib/pmstore`` (the server's unprivileged
    user could not reach a folder under ``/root``).
    """
    env = os.environ.get("PMSTORE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/pmstore")
    return Path(platformdirs.user_data_dir("pmstore", appauthor=False))


def find_bindir() -> Path:
    """Return the folder of the PostgreSQL server binaries to use.

    ``PMSTORE_PG_BINDIR`` wins; else ``pg_config --bindir``; else the newest
    ``/usr/lib/postgresql/*/bin``. Raises ServerError saying what is missing.
    """
    env = os.environ.get("PMSTORE_PG_BINDIR")
    candidates: list[Path] = []
    if env:
        candidates.append(Path(env))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=False
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        candidates.extend(
            sorted(
                Path("/usr/lib/postgresql").glob("*/bin"),
                key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                reverse=True,
            )
        )
    for path in candidates:
        if (path / "postgres").exists() and (path / "initdb").exists():
            return path
    where = env or "pg_config --bindir and /usr/lib/postgresql/*/bin"
    raise ServerError(
        f"PostgreSQL server binaries (postgres, initdb) not found in {where}: "
        "install them (apt-get install postgresql) or set PMSTORE_PG_BINDIR"
    )


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What ``EmbeddedServer.status`` reports."""

    home: Path
    initialized: bool
    running: bool
    pid: int | None
    port: int | None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """A local PostgreSQL + TimescaleDB server kept in one home folder.

    ``start`` initialises the folder on first use and is idempotent; ``stop``
    is too. ``dsn()`` returns a password-free libpq URL (the password is in
    a passfile). Use as a context manager to start on entry and stop on exit.

    ``license`` sets ``timescaledb.license`` at start (``"apache"`` makes a
    Community build behave as the Apache-2 edition); ``settings`` adds or
    overrides server settings.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        bindir: Path | str | None = None,
        license: str | None = None,
        settings: Mapping[str, str] | None = None,
        durable: bool = True,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        self._bindir = Path(bindir) if bindir is not None else None
        self.license = license
        base = durable_settings() if durable else THROWAWAY_SETTINGS
        self.settings: dict[str, str] = {**base, **(settings or {})}

    def __repr__(self) -> str:
        return f"EmbeddedServer(home={str(self.home)!r}, license={self.license!r})"

    # -- locations ---------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        """Folder of the server's Unix socket."""
        return self.home / "run"

    @property
    def passfile(self) -> Path:
        """The libpq passfile holding the generated password."""
        return self.home / "pgpass"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.home / "server.log"

    @property
    def bindir(self) -> Path:
        """Folder of the PostgreSQL binaries used (found on first use)."""
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @property
    def port(self) -> int | None:
        """The TCP port on 127.0.0.1, fixed at init (None before)."""
        port_file = self.home / "port"
        if port_file.exists():
            return int(port_file.read_text().strip())
        return None

    def dsn(self, dbname: str = DATABASE) -> str:
        """Return a libpq URL for ``dbname`` on this server; it holds no password.

        Raises ServerError when the server was never initialised.
        """
        port = self.port
        if port is None:
            raise ServerError(f"embedded server at {self.home} is not initialised: start it first")
        return (
            f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}"
            f"?passfile={self.passfile}&connect_timeout=10"
        )

    # -- checks ------------------------------------------------------------

    def _pg_config(self, flag: str) -> Path:
        pg_config = self.bindir / "pg_config"
        if not pg_config.exists():
            found = shutil.which("pg_config")
            if found is None:
                raise ServerError(f"pg_config not found beside {self.bindir}")
            pg_config = Path(found)
        out = subprocess.run([str(pg_config), flag], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise ServerError(f"{pg_config} {flag} failed: {out.stderr.strip()}")
        return Path(out.stdout.strip())

    def check_timescaledb(self) -> str:
        """Return the installed TimescaleDB version.

        Raises ServerError saying how to install it when the extension is
        missing from these binaries, or older than ``MIN_TIMESCALEDB``.
        """
        pkglibdir = self._pg_config("--pkglibdir")
        control = self._pg_config("--sharedir") / "extension" / "timescaledb.control"
        if not (pkglibdir / "timescaledb.so").exists() or not control.exists():
            raise ServerError(
                f"TimescaleDB is not installed for the PostgreSQL in {self.bindir} "
                f"(no timescaledb.so in {pkglibdir}): {INSTALL_HINT}"
            )
        version = "unknown"
        for line in control.read_text().splitlines():
            if line.startswith("default_version"):
                version = line.split("=", 1)[1].strip().strip("'")
        if parse_version(version) < parse_version(MIN_TIMESCALEDB):
            raise ServerError(
                f"TimescaleDB {version} for the PostgreSQL in {self.bindir} is too old: "
                f"pmstore needs {MIN_TIMESCALEDB} or newer ({control}); {INSTALL_HINT}"
            )
        return version

    # -- the unprivileged user when root -----------------------------------

    def _server_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        name = os.environ.get("PMSTORE_SERVER_USER", "postgres")
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        try:
            return pwd.getpwnam("pmstore")
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pmstore"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(
                "PostgreSQL refuses to run as root and no unprivileged user could be "
                f"created ({done.stderr.strip()}); set PMSTORE_SERVER_USER to an existing user"
            )
        return pwd.getpwnam("pmstore")

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._server_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd="/",
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise ServerError(
                f"{Path(args[0]).name} failed (exit {done.returncode}): {detail}"
                + (f"\nlast lines of {self.log_file}:\n{tail}" if tail else "")
            )
        return done

    def _ensure_reachable(self, user: pwd.struct_passwd) -> None:
        """Fail early when the server's user cannot reach the home folder."""
        for parent in [self.home, *self.home.parents]:
            mode = parent.stat().st_mode
            if parent.stat().st_uid == user.pw_uid:
                continue
            if not mode & 0o001:
                raise ServerError(
                    f"the server runs as {user.pw_name}, which cannot enter {parent}: "
                    "set PMSTORE_HOME to a folder it can reach (e.g. under /var/lib or /tmp)"
                )

    # -- lifecycle ---------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """Whether the home folder holds an initialised cluster."""
        return (self.data_dir / "PG_VERSION").exists() and self.passfile.exists()

    def init(self) -> None:
        """Create the cluster (initdb) with a generated password. Idempotent.

        Raises ServerError when binaries or TimescaleDB are missing or initdb fails.
        Costs a few seconds.
        """
        if self.initialized:
            return
        self.check_timescaledb()
        user = self._server_user()
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        port = _free_port()
        pwfile = self.home / ".initdb-password"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if user is not None:
            self._ensure_reachable(user)
            for path in (self.data_dir, self.socket_dir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
            if not self.log_file.exists():
                self.log_file.touch()
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        try:
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.passfile.write_text(f"127.0.0.1:{port}:*:{SUPERUSER}:{password}\n")
        os.chmod(self.passfile, 0o600)
        (self.home / "port").write_text(f"{port}\n")

    def _pid(self) -> int | None:
        """The postmaster's pid when it runs (a stale pid file of a reused pid is ignored)."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return pid  # no /proc to check: trust the pid file
        return pid if b"postgres" in cmdline else None

    def _ensure_free_port(self) -> None:
        """Before a start: when another program took the port, move to a free one."""
        port = self.port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As PostgreSQL does: connections of a previous run in TIME_WAIT
            # do not make the port busy, only another listener does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port or 0))
                return
            except OSError:
                pass
        new = _free_port()
        (self.home / "port").write_text(f"{new}\n")
        user, password = self.passfile.read_text().strip().split(":", 4)[3:]
        self.passfile.write_text(f"127.0.0.1:{new}:*:{user}:{password}\n")

    def status(self) -> ServerStatus:
        """Return whether the server is initialised and running, its pid and port."""
        pid = self._pid() if self.initialized else None
        return ServerStatus(self.home, self.initialized, pid is not None, pid, self.port)

    def start(self, *, timeout: float = 60.0) -> None:
        """Initialise if needed and start the server, waiting until it accepts connections.

        Idempotent: a running server is left as it is. Creates the ``pmstore``
        database on first start. Raises ServerError with the server log's last
        lines when it does not come up within ``timeout`` seconds.
        """
        self.init()
        if self._pid() is None:
            self._ensure_free_port()
            port = self.port
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c unix_socket_permissions=0700",
                "-c shared_preload_libraries=timescaledb",
            ]
            if self.license:
                options.append(f"-c timescaledb.license={self.license}")
            options += [f"-c {k}={v}" for k, v in self.settings.items()]
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(self.log_file),
                    "--wait",
                    f"--timeout={int(timeout)}",
                    "-o",
                    " ".join(options),
                ]
            )
        self._ensure_database(timeout)

    def _ensure_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"embedded server did not accept connections: {redact(str(exc))}"
                    ) from redact_error(exc)
                time.sleep(0.2)

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server if it runs (idempotent). ``mode``: smart, fast or immediate."""
        if not self.initialized or self._pid() is None:
            return
        self._run(
            [str(self.bindir / "pg_ctl"), "stop", "--pgdata", str(self.data_dir), "-m", mode, "-w"]
        )

    def restart(self) -> None:
        """Stop then start (e.g. to apply a new ``license``)."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    @contextlib.contextmanager
    def throwaway(
        cls,
        *,
        bindir: Path | str | None = None,
        license: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> Iterator[EmbeddedServer]:
        """Start a temporary, non-durable server; stop it and delete its folder on exit."""
        root = Path(tempfile.mkdtemp(prefix="pmstore-server-"))
        os.chmod(root, 0o755)
        server = cls(root, bindir=bindir, license=license, settings=settings, durable=False)
        try:
            server.start()
            yield server
        finally:
            with contextlib.suppress(ServerError):
                server.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)
