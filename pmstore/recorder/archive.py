"""The recorder's raw archive: every frame and REST response it received, verbatim, in order.

Format (docs/recorder.md has the full description): gzip-compressed JSON
lines, one record per line. Line 0 is the file's header::

    {"pmstore_archive": 1, "run": "<16 hex>", "file": 3, "opened": <ns>,
     "params": {"snapshot_every": 60.0, "price_every": 60.0, "no_snapshot_after": 30.0}}

line 1 the deriver's state at the file's start (``{"k": "state", ...}``:
order books, open gaps, connections), and from line 2 on the records, each
an object with ``k`` (its kind), ``t`` (receive time, Unix nanoseconds) and
``q`` (the run's record sequence number), plus the kind's fields: ``frame``
records carry the WebSocket text exactly as received in ``d``, with the
connection ``c`` and its epoch ``e``; ``rest`` records a REST response's
body in ``d``. A closed file ends with the deriver's state at its end.

A file is written as ``NAME.jsonl.gz.part`` and renamed to
``NAME-nCOUNT.jsonl.gz`` (COUNT: its records) once complete (trailer
written, fsynced). It is flushed (``Z_SYNC_FLUSH``) every commit interval,
so after a kill the ``.part`` file holds every record flushed; ``recover``
turns it into a closed file. A record's place in its file (line index) is
its position: database cursors count records, not bytes.

Costs: one ``orjson.dumps`` and a zlib deflate (level 6 by default) per
record; a flush every commit interval; an fsync per closed file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson

from pmstore.errors import ConfigurationError, PayloadError

__all__ = [
    "ARCHIVE_KEY",
    "ARCHIVE_VERSION",
    "ArchiveFile",
    "ArchiveHeader",
    "ArchiveLock",
    "ArchiveWriter",
    "closed_files",
    "is_archive",
    "partial_files",
    "read_archive",
    "read_header",
    "recover",
]

ARCHIVE_KEY: Final = "pmstore_archive"
"""The header's marker key: a file whose first line is an object with it is an archive file."""

ARCHIVE_VERSION: Final = 1

PREFIX: Final = "pmrec-"
SUFFIX: Final = ".jsonl.gz"
PART: Final = ".part"
_CLOSED = re.compile(r"^pmrec-(?P<stamp>\d{8}T\d{6}Z)-(?P<run>[0-9a-f]{16})-(?P<file>\d{6})"
                     r"-n(?P<count>\d+)\.jsonl\.gz$")  # fmt: skip
_READ_CHUNK: Final = 1 << 20

_inflate_lib: types.ModuleType = zlib
try:  # ISA-L's inflate: the same interface as zlib's, a few times as fast
    from isal import isal_zlib

    _inflate_lib = isal_zlib
except ImportError:  # no isal wheel for this platform
    pass


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    """Line 0 of an archive file: which run and file this is, and the deriver's parameters."""

    run: str
    file: int
    opened_ns: int
    params: dict[str, float]
    version: int = ARCHIVE_VERSION

    @property
    def file_id(self) -> str:
        """The file's identity in ``pmstore_ingest_files``: its run and index, not its bytes
        (a renamed, moved or recovered file is the same file)."""
        return f"pmrec:{self.run}:{self.file:06d}"

    def line(self) -> bytes:
        """The header as its JSON line (with the newline)."""
        return orjson.dumps(self.to_json()) + b"\n"

    def to_json(self) -> dict[str, Any]:
        return {
            ARCHIVE_KEY: self.version,
            "run": self.run,
            "file": self.file,
            "opened": self.opened_ns,
            "params": self.params,
        }

    @classmethod
    def from_json(cls, obj: object, where: str) -> ArchiveHeader:
        """The header in ``obj`` (line 0 of ``where``); PayloadError when it is not one."""
        if not isinstance(obj, dict) or ARCHIVE_KEY not in obj:
            raise PayloadError(f"{where}: not a pmstore archive file (no header line)")
        version = obj[ARCHIVE_KEY]
        if version != ARCHIVE_VERSION:
            raise PayloadError(
                f"{where}: archive format version {version!r}; this pmstore reads "
                f"version {ARCHIVE_VERSION}"
            )
        try:
            params = {str(k): float(v) for k, v in obj["params"].items()}
            return cls(str(obj["run"]), int(obj["file"]), int(obj["opened"]), params)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PayloadError(f"{where}: malformed archive header: {exc}") from exc


def _stamp(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns // 1_000_000_000))


def _base_name(header: ArchiveHeader) -> str:
    return f"{PREFIX}{_stamp(header.opened_ns)}-{header.run}-{header.file:06d}"


class ArchiveFile:
    """One archive file being written: gzip stream, record count, flushed count.

    Not used directly: ``ArchiveWriter`` opens, appends to and closes it.
    Raises OSError as the file system does (disk full: ENOSPC or EFBIG).
    """

    def __init__(self, directory: Path, header: ArchiveHeader, level: int) -> None:
        self.header = header
        self.path = directory / (_base_name(header) + SUFFIX + PART)
        self._raw: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 (closed by close())
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.records = 0
        self.flushed = 0
        self.compressed_bytes = 0
        self._write(header.line())

    def _write(self, line: bytes) -> None:
        out = self._deflate.compress(line)
        if out:
            self._raw.write(out)
            self.compressed_bytes += len(out)
        self.records += 1

    def append(self, record: dict[str, Any]) -> int:
        """Append one record; its index (position) in the file."""
        index = self.records
        self._write(orjson.dumps(record) + b"\n")
        return index

    def flush(self) -> None:
        """Everything appended so far reaches the file (readable after a kill; no fsync)."""
        if self.flushed == self.records:
            return
        out = self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self._raw.write(out)
        self._raw.flush()
        self.compressed_bytes += len(out)
        self.flushed = self.records

    def close(self) -> Path:
        """Finish the gzip stream, fsync, rename to its closed name; the closed path."""
        self._raw.write(self._deflate.flush(zlib.Z_FINISH))
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self.flushed = self.records
        final = self.path.parent / f"{_base_name(self.header)}-n{self.records}{SUFFIX}"
        os.rename(self.path, final)
        _fsync_dir(self.path.parent)
        return final

    def abandon(self) -> None:
        """Close the file without finishing it (after a write error): it stays a ``.part``."""
        with contextlib.suppress(OSError):
            self._raw.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArchiveWriter:
    """Writes a run's archive files into ``directory``: open, append, flush, rotate, close.

    ``level`` is the deflate level (6: zlib's default). ``max_bytes``: a file
    is due for rotation (``due``) once this many compressed bytes are
    written, or when the archive time reaches the next UTC hour.
    """

    def __init__(
        self,
        directory: Path,
        run: str,
        params: dict[str, float],
        *,
        max_bytes: int = 256 << 20,
        level: int = 6,
    ) -> None:
        if max_bytes < 1 or not 0 <= level <= 9:
            raise ConfigurationError("max_bytes must be >= 1 and level in 0..9")
        self.directory = directory
        self.run = run
        self.params = params
        self.max_bytes = max_bytes
        self.level = level
        self.current: ArchiveFile | None = None
        self._next_index = 0
        self._hour_end = 0
        self.bytes_written = 0
        """Compressed bytes of the files closed so far."""

    def open(self, now_ns: int) -> ArchiveFile:
        """Open the run's next file (its header written); the caller appends its state next."""
        if self.current is not None:
            raise ConfigurationError("an archive file is open already")
        header = ArchiveHeader(self.run, self._next_index, now_ns, self.params)
        self.current = ArchiveFile(self.directory, header, self.level)
        self._next_index += 1
        hour = 3600 * 1_000_000_000
        self._hour_end = (now_ns // hour + 1) * hour
        return self.current

    def due(self, now_ns: int) -> bool:
        """True when the open file should be rotated (size or hour reached)."""
        f = self.current
        return f is not None and (f.compressed_bytes >= self.max_bytes or now_ns >= self._hour_end)

    def close(self) -> Path:
        """Close the open file (the caller appended its end state); its closed path."""
        f = self.current
        if f is None:
            raise ConfigurationError("no archive file is open")
        self.current = None
        path = f.close()
        self.bytes_written += f.compressed_bytes
        return path


class ArchiveLock:
    """An exclusive lock on an archive directory (one recorder per directory).

    ``flock`` on ``DIR/.pmstore-record.lock``: released by the kernel when the
    process dies, so a killed recorder never leaves it held. Raises
    ConfigurationError when another process holds it.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".pmstore-record.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"{self.path.parent}: another pmstore record is using this archive directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class ClosedFile:
    """A closed archive file: its path, run, index and record count (from its name)."""

    path: Path
    stamp: str
    run: str
    index: int
    records: int

    @property
    def file_id(self) -> str:
        return f"pmrec:{self.run}:{self.index:06d}"


def closed_files(directory: Path) -> list[ClosedFile]:
    """The closed archive files in ``directory``, oldest first (by opening time, run, index)."""
    found: list[ClosedFile] = []
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        m = _CLOSED.match(path.name)
        if m:
            found.append(ClosedFile(path, m["stamp"], m["run"], int(m["file"]), int(m["count"])))
    found.sort(key=lambda f: (f.stamp, f.run, f.index))
    return found


def partial_files(directory: Path) -> list[Path]:
    """The ``.part`` files in ``directory`` (left by a recorder that was killed)."""
    return sorted(directory.glob(f"{PREFIX}*{SUFFIX}{PART}"))


def _lines(path: Path) -> Iterator[bytes]:
    """The complete lines of a gzip file, without newlines; stops quietly where the stream
    breaks off (a ``.part`` file). Raises PayloadError for a file that is not gzip."""
    inflate = _inflate_lib.decompressobj(31)
    rest = b""
    started = False
    with open(path, "rb") as f:
        while not inflate.eof:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                break
            try:
                data = inflate.decompress(chunk)
            except Exception as exc:  # zlib.error / isal_zlib.error: corrupt data
                if started:
                    break  # a torn write at the end of a killed recorder's file
                raise PayloadError(f"{path}: not a gzip archive file: {exc}") from exc
            if data:
                started = True
                parts = (rest + data).split(b"\n")
                rest = parts.pop()
                yield from parts


def read_header(path: Path) -> ArchiveHeader:
    """The header of archive file ``path``; PayloadError when it is not one."""
    for line in _lines(path):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"{path}: not a pmstore archive file: {exc}") from exc
        return ArchiveHeader.from_json(obj, str(path))
    raise PayloadError(f"{path}: empty, not a pmstore archive file")


def is_archive(path: Path) -> bool:
    """True when ``path`` is a pmstore archive file: gzip whose content starts with the
    header's marker (reads at most a few KiB of it)."""
    prefix = b'{"' + ARCHIVE_KEY.encode() + b'":'
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 12)
        if head[:2] != b"\x1f\x8b":
            return False
        data = _inflate_lib.decompressobj(31).decompress(head)
    except Exception:  # OSError, or a gzip stream that is not one (zlib's / isal's error)
        return False
    return bytes(data[: len(prefix)]) == prefix


def read_archive(path: Path) -> tuple[ArchiveHeader, Iterator[dict[str, Any]]]:
    """The header of ``path`` and an iterator over its records (line 1 on), as dicts.

    A ``.part`` file is read up to its last complete line. Raises
    PayloadError when the file is not an archive or a line is not JSON.
    """
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise PayloadError(f"{path}: empty, not a pmstore archive file")
    try:
        header = ArchiveHeader.from_json(orjson.loads(first), str(path))
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"{path}: not a pmstore archive file: {exc}") from exc

    def records() -> Iterator[dict[str, Any]]:
        for n, line in enumerate(lines, start=1):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise PayloadError(f"{path}: record {n} is not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise PayloadError(f"{path}: record {n} is not an object")
            yield obj

    return header, records()


Replay = Callable[[ArchiveHeader, Iterator[dict[str, Any]]], "dict[str, Any] | None"]


def recover(part: Path, replay: Replay) -> Path | None:
    """Close a killed recorder's ``.part`` file; its closed path.

    Its complete records are copied verbatim to the closed name while
    ``replay`` consumes them (called with the header and an iterator of the
    records; it returns the record to append last, the deriver's end state,
    or None); then the ``.part`` is removed. A file without a complete
    header is removed (None). Raises OSError as the file system does.
    """
    lines = _lines(part)
    first = next(lines, None)
    try:
        if first is None:
            raise PayloadError(f"{part}: empty")
        header = ArchiveHeader.from_json(orjson.loads(first), str(part))
    except (PayloadError, orjson.JSONDecodeError):
        part.unlink()
        return None
    tmp = part.with_name(part.name + ".recovering")
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    count = 0
    with open(tmp, "wb") as out:

        def put(line: bytes) -> None:
            nonlocal count
            out.write(deflate.compress(line + b"\n"))
            count += 1

        def records() -> Iterator[dict[str, Any]]:
            for line in lines:
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return  # a torn last line: everything before it is kept
                if not isinstance(obj, dict):
                    return
                put(line)
                yield obj

        put(first)
        feed = records()
        state = replay(header, feed)
        for _ in feed:  # what replay left unread is kept too
            pass
        if state is not None:
            put(orjson.dumps(state))
        out.write(deflate.flush(zlib.Z_FINISH))
        out.flush()
        os.fsync(out.fileno())
    final = part.parent / f"{_base_name(header)}-n{count}{SUFFIX}"
    os.rename(tmp, final)
    part.unlink()
    _fsync_dir(part.parent)
    return final
