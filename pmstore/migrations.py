"""Apply, roll back and inspect pmstore's schema: the yoyo migrations shipped with it.

The SQL lives in the repository's top-level ``migrations/`` folder, one file
per step with a ``.rollback.sql`` beside it. Every wheel and sdist carries it
inside the package as ``pmstore/schema`` (in the checkout a symlink to
``migrations/``), found through importlib.resources: no checkout and no
environment variable needed. ``yoyo apply`` from the repository root, and
``yoyo apply package:pmstore:schema`` with only the wheel installed, run the
very same files. This module runs them programmatically under yoyo's lock and
adds what the yoyo command line does not do:

- the post-apply hook (``post-apply.sql``) runs on every ``apply``, even when
  nothing is pending, so a server that gained the Community edition of
  TimescaleDB gets the features it lacked;
- drift: yoyo identifies a migration by its id only, so an applied file that
  was edited later goes unnoticed. ``apply`` records a SHA-256 of each applied
  migration's file in ``pmstore_migration_checksums`` (migration 0010);
  ``status`` names every applied migration whose file no longer matches, and
  ``apply`` refuses to go on over one unless ``allow_drift``. Migrations
  applied by plain yoyo have no checksum until the next ``apply`` records it
  (``status`` lists them as ``unrecorded``);
- server WARNINGs (e.g. features left out on the Apache-2 edition) are
  logged and returned;
- a lock held by another or a killed process raises MigrationLockError with
  the way out instead of waiting forever;
- a read-only server (a hot standby in recovery, or ``transaction_read_only``
  on) is refused at once with MigrationError instead of a lock wait;
- yoyo's own session is renewed after each rollback step, so that a session
  which missed the drop of TimescaleDB (migration 0001) never writes yoyo's
  log row or releases its lock (see ``_Backend``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from yoyo import default_migration_table, read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri
from yoyo.exceptions import LockTimeout

from pmstore.dsn import describe, redact, redact_error, to_yoyo_url
from pmstore.errors import MigrationDriftError, MigrationError, MigrationLockError

__all__ = [
    "CHECKSUM_TABLE",
    "DEFAULT_LOCK_TIMEOUT",
    "YOYO_SOURCE",
    "MigrationResult",
    "MigrationStatus",
    "apply",
    "break_lock",
    "checksum",
    "migrations_dir",
    "rollback",
    "status",
]

logger = logging.getLogger(__name__)
lock_logger = logging.getLogger(f"{__name__}.lock")
"""Says, before the wait, who holds the migration lock."""

DEFAULT_LOCK_TIMEOUT = 120.0
"""Seconds to wait for yoyo's lock before reporting who holds it."""


YOYO_SOURCE = "package:pmstore:schema"
"""The migrations as a yoyo source: ``yoyo apply --database URL package:pmstore:schema``."""

CHECKSUM_TABLE = "pmstore_migration_checksums"
"""Where ``apply`` records each applied migration's SHA-256 (created by migration 0010)."""


def migrations_dir() -> Path:
    """Return the folder of the migration files shipped with pmstore (``pmstore/schema``).

    Raises MigrationError when the installation lacks them.
    """
    path = Path(str(resources.files("pmstore").joinpath("schema")))
    if not (path / "0001_extensions.sql").is_file():
        raise MigrationError(
            f"pmstore's migrations are missing from {path}: the installation is "
            "incomplete; reinstall pmstore (a wheel or sdist carries them in pmstore/schema)"
        )
    return path


def checksum(migration: Any) -> str:
    """Return the SHA-256 (hex) of a yoyo migration's file: what drift is measured by."""
    return hashlib.sha256(Path(migration.path).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Which migrations are applied, pending, drifted or unrecorded, by id, in order."""

    applied: list[str]
    pending: list[str]
    drifted: list[str] = field(default_factory=list)
    """Applied migrations whose file changed since its checksum was recorded."""
    unrecorded: list[str] = field(default_factory=list)
    """Applied migrations with no checksum yet (applied by plain yoyo, or before 0010)."""


@dataclass(slots=True)
class MigrationResult:
    """What ``apply`` or ``rollback`` did: the migration ids and the server's warnings."""

    migrations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_NoticeHandler = Callable[[psycopg.errors.Diagnostic], None]


class _Backend(PostgresqlPsycopgBackend):  # type: ignore[misc]  # yoyo has no type hints
    """yoyo's psycopg 3 backend, plus: the server's notices go to ``on_notice`` on every
    connection it opens, and its own session is renewed after each rollback step.

    yoyo runs a migration's steps on a new connection (a copy of the backend), then
    writes its log row, unmarks the migration and at the end releases its lock on the
    session it opened first. Rolling back 0001 drops TimescaleDB. A session that missed
    that drop (the server's invalidation queue was reset under it, which happens to an
    idle session on a busy machine) keeps TimescaleDB's catalog ids, and its next
    statement fails with "could not open relation with OID" (issue 23). So before the
    log row of every rollback step, that session is replaced by one opened after the
    step: one extra connection per migration rolled back.
    """

    def __init__(self, uri: Any, on_notice: _NoticeHandler) -> None:
        self.on_notice = on_notice
        self.renewed: Any = None
        super().__init__(uri, default_migration_table)

    @property
    def connection(self) -> Any:
        """The session in use: the renewed one once there is one."""
        return self.renewed if self.renewed is not None else super().connection

    def connect(self, dburi: Any) -> Any:
        """A new autocommit connection (yoyo's), with the notice handler."""
        connection = super().connect(dburi)
        connection.add_notice_handler(self.on_notice)
        return connection

    def copy(self) -> _Backend:
        """The backend yoyo runs a migration's steps on: a new connection, same handler."""
        return _Backend(self.uri, self.on_notice)

    def log_migration(self, migration: Any, operation: str) -> None:
        """yoyo's log row; after a rollback step, on a session opened after the step."""
        if operation == "rollback":
            self.renew()
        super().log_migration(migration, operation)

    def renew(self) -> None:
        """Replace the session by a new one (yoyo's lock is a row: it stays held)."""
        stale = self.connection
        fresh = self.connect(self.uri)
        self.init_connection(fresh)
        self.renewed = fresh
        with contextlib.suppress(psycopg.Error):
            stale.close()


def _refuse_read_only(backend: Any, dsn: str) -> None:
    """Raise MigrationError at once when the server takes no writes (not after a lock wait)."""
    row = backend.execute(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
    ).fetchone()
    in_recovery, read_only = bool(row[0]), row[1] == "on"
    if in_recovery:
        raise MigrationError(
            f"{describe(dsn)} is a read-only standby (in recovery): migrations write, so "
            "run them against the primary (a DSN naming several servers can add "
            "target_session_attrs=read-write)"
        )
    if read_only:
        raise MigrationError(
            f"{describe(dsn)} accepts no writes (transaction_read_only is on, e.g. through "
            "default_transaction_read_only): migrations need a writable session"
        )


@contextlib.contextmanager
def _backend(dsn: str, result: MigrationResult | None = None, *, writes: bool) -> Iterator[Any]:
    """yoyo's backend on ``dsn`` (refused at once when ``writes`` and the server is read-only)."""

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized in ("WARNING",) and diag.message_primary:
            logger.warning("%s", diag.message_primary)
            if result is not None:
                result.warnings.append(diag.message_primary)

    try:
        backend = _Backend(parse_uri(to_yoyo_url(dsn)), on_notice)
    except psycopg.Error as exc:
        raise MigrationError(
            f"cannot connect to {describe(dsn)}: {redact(str(exc))}"
        ) from redact_error(exc)
    try:
        if writes:
            _refuse_read_only(backend, dsn)
        backend.init_database()
        yield backend
    finally:
        with contextlib.suppress(Exception):
            backend.connection.close()


@contextlib.contextmanager
def _locked(backend: Any, dsn: str, timeout: float) -> Iterator[None]:
    with contextlib.suppress(Exception):  # no yoyo_lock table yet: nobody holds it
        row = backend.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
        if row:
            lock_logger.warning(
                "waiting up to %gs for the migration lock held by process %s since %s UTC",
                timeout,
                row[0],
                row[1],
            )
    try:
        with backend.lock(timeout=timeout):
            yield
    except LockTimeout as exc:
        holder = ""
        with contextlib.suppress(Exception):
            row = backend.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
            if row:
                holder = f" by process {row[0]} since {row[1]} UTC"
        raise MigrationLockError(
            f"migrations on {describe(dsn)} are locked{holder} (waited {timeout:g}s). "
            "If no migration is running (e.g. a killed process left the lock), remove it "
            "with `pmstore migrate --break-lock` or `yoyo break-lock`, then retry."
        ) from exc


def _load(source: str | Path | None) -> Any:
    if source is None:
        migrations_dir()  # a clear error when the package lacks its SQL
        source = YOYO_SOURCE
    return read_migrations(str(source))


def _read_checksums(dsn: str) -> dict[str, str]:
    """The recorded checksums by migration id; empty before migration 0010."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CHECKSUM_TABLE,)).fetchone()
        if not (found and found[0]):
            return {}
        rows = conn.execute(
            f"SELECT migration_id, sha256 FROM {CHECKSUM_TABLE}"  # noqa: S608 - a constant
        ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _record_checksums(dsn: str, migrations: Iterable[Any], *, replace: Iterable[str]) -> None:
    """Record the checksum of each migration not recorded yet, and of those in ``replace``."""
    rows = [(m.id, checksum(m)) for m in migrations]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = ANY(%s)",  # noqa: S608
            (list(replace),),
        )
        cur.executemany(
            f"INSERT INTO {CHECKSUM_TABLE} (migration_id, sha256) VALUES (%s, %s) "  # noqa: S608
            "ON CONFLICT (migration_id) DO NOTHING",
            rows,
        )


def _forget_checksums(dsn: str, ids: list[str]) -> None:
    """Drop the checksums of rolled-back migrations (the table may be gone with 0010)."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CHECKSUM_TABLE,)).fetchone()
        if found and found[0]:
            conn.execute(
                f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = ANY(%s)",  # noqa: S608
                (ids,),
            )


def _state(backend: Any, dsn: str, migrations: Any) -> MigrationStatus:
    applied_hashes = backend.get_applied_migration_hashes()
    recorded = _read_checksums(dsn)
    state = MigrationStatus([], [])
    for m in migrations:
        if m.hash not in applied_hashes:
            state.pending.append(m.id)
            continue
        state.applied.append(m.id)
        if m.id not in recorded:
            state.unrecorded.append(m.id)
        elif recorded[m.id] != checksum(m):
            state.drifted.append(m.id)
    return state


def _run(dsn: str, action: str, step: Any, *, writes: bool = True) -> MigrationResult:
    result = MigrationResult()
    try:
        with _backend(dsn, result, writes=writes) as backend:
            step(backend, result)
    except MigrationError:
        raise
    except psycopg.Error as exc:
        raise MigrationError(
            f"{action} failed on {describe(dsn)}: {redact(str(exc)).strip()}"
        ) from redact_error(exc)
    return result


def apply(
    dsn: str,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    allow_drift: bool = False,
    source: str | Path | None = None,
) -> MigrationResult:
    """Apply every pending migration, then the post-apply hook, under yoyo's lock.

    Then records the checksum of every applied migration that has none yet.
    Returns the ids applied (empty when the schema was current) and the
    server's warnings. Raises MigrationDriftError, applying nothing, when an
    applied migration's file changed since it was applied, unless
    ``allow_drift`` (then the current files become the new reference and the
    drift is returned as a warning). Raises MigrationLockError when the lock
    stays held for ``lock_timeout`` seconds, MigrationError when a migration
    fails (that migration is rolled back; earlier ones stay applied), and
    MigrationError at once, before the lock, when the server takes no writes
    (a hot standby, or ``transaction_read_only`` on).
    ``source``: another migrations folder or yoyo source (default: pmstore's).
    """

    def step(backend: Any, result: MigrationResult) -> None:
        with _locked(backend, dsn, lock_timeout):
            migrations = _load(source)
            state = _state(backend, dsn, migrations)
            if state.drifted:
                message = (
                    f"applied migration(s) changed since they were applied on {describe(dsn)}: "
                    f"{', '.join(state.drifted)}"
                )
                if not allow_drift:
                    raise MigrationDriftError(
                        f"{message}. Restore the files, or add a new migration instead of "
                        "editing an applied one; `pmstore migrate --allow-drift` goes on "
                        "and takes the current files as the new reference",
                        state.drifted,
                    )
                logger.warning("%s (allowed)", message)
                result.warnings.append(f"{message} (allowed: now the reference)")
            pending = backend.to_apply(migrations)
            backend.apply_migrations_only(pending)
            backend.run_post_apply(migrations)
            result.migrations.extend(m.id for m in pending)
            _record_checksums(dsn, migrations, replace=state.drifted)

    return _run(dsn, "applying migrations", step)


def rollback(
    dsn: str,
    count: int | None = None,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    source: str | Path | None = None,
) -> MigrationResult:
    """Roll back the last ``count`` applied migrations (all when ``count`` is None).

    Newest first, respecting dependencies; their checksums are forgotten.
    Raises MigrationLockError or MigrationError like ``apply``. Costs one
    extra connection per migration rolled back (see ``_Backend``).
    """
    if count is not None and count < 1:
        raise MigrationError(f"rollback count must be at least 1, not {count}")

    def step(backend: Any, result: MigrationResult) -> None:
        with _locked(backend, dsn, lock_timeout):
            migrations = backend.to_rollback(_load(source))
            if count is not None:
                migrations = migrations.replace(list(migrations)[:count])
            backend.rollback_migrations(migrations)
            result.migrations.extend(m.id for m in migrations)
            _forget_checksums(dsn, result.migrations)

    return _run(dsn, "rolling back migrations", step)


def status(dsn: str, *, source: str | Path | None = None) -> MigrationStatus:
    """Return the applied, pending, drifted and unrecorded migrations (no lock, no writes).

    Works on a hot standby of a migrated primary. Raises MigrationError when
    the server cannot be read.
    """
    out: list[MigrationStatus] = []

    def step(backend: Any, result: MigrationResult) -> None:
        out.append(_state(backend, dsn, _load(source)))

    _run(dsn, "reading migration status", step, writes=False)
    return out[0]


def break_lock(dsn: str) -> None:
    """Remove yoyo's migration lock (use only when no migration is running).

    Raises MigrationError when the server takes no writes, like ``apply``.
    """
    _run(dsn, "breaking the lock", lambda backend, result: backend.break_lock())
