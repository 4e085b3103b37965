"""Where ``pmstore export`` writes its day files: a local folder, S3, or any filesystem
pyarrow or fsspec knows.

    target = open_target("s3://bucket/prefix")      # or a Path, or "gs://...", "memory://..."
    day = target.open_day("price_snapshots", date(2026, 11, 20), schema)
    day.write(batch, row_group_size)                 # one row group per call
    day.commit()                                     # the file appears, whole
    # or day.abort(): nothing appears, the previous file stays

A local path (a ``Path``, a plain string or ``file://``) is written as export always did:
into a temporary name beside the day's file (``.part.parquet.tmp``, hidden from hive
readers by its leading dot), renamed over it (``os.replace``, atomic on POSIX).

Any other URI goes through ``pyarrow.fs.FileSystem.from_uri`` (S3, GCS, HDFS, Azure; in
the pyarrow wheel, no new dependency), or, for a scheme pyarrow does not know, through
fsspec (``pip install 'pmstore[fsspec]'`` plus that filesystem's own package). There a
day is streamed to a temporary object, ``OUT/_pmstore_tmp/TABLE.date=YYYY-MM-DD.tmp``
(outside every table's folder; Spark, Trino and pyarrow skip ``_`` names anyway), its
size checked against the bytes written, then copied over the day's file in one
server-side copy (S3 ``CopyObject``: the key changes atomically from the old object to
the new one) and the temporary deleted. The day's key is never the target of a stream,
because pyarrow cannot abort an upload: closing its stream, even from a destructor
while an error propagates, completes the upload with whatever parts got through, so
an S3 upload cut off mid-part becomes a short (even empty) object, which is why the size
is checked too. A failure leaves the day's file as it was; a temporary left by a killed
process is replaced by the next run and deleted by it (an upload killed before it
completed leaves only an incomplete multipart upload, which S3 never shows; a bucket
lifecycle rule ``AbortIncompleteMultipartUpload`` reclaims its space). pyarrow's
``delete_file`` leaves a zero-byte folder marker (``OUT/_pmstore_tmp/``) behind, which
readers ignore. One server-side ``CopyObject`` takes at most 5 GiB: a day's file above
that fails (with the previous file kept).

Memory: the batch being written, the Parquet writer's buffers of one row group and, on
S3, one upload part (pyarrow 26 uploads 10 MiB parts; synchronous uploads,
``background_writes`` off, so parts never pile up behind a slow network).

Credentials are never pmstore's: the filesystem finds them itself (for S3 the AWS SDK's
chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE`` and ``~/.aws``, instance metadata; ``AWS_ENDPOINT_URL`` or
``?endpoint_override=host:port&scheme=http`` for an S3-compatible server). A URI is shown
as ``scheme://host/path`` (no user, password or query), and errors pass through
``pmstore.dsn.redact``.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from pmstore._optional import require
from pmstore.dsn import redact, redact_error
from pmstore.errors import ConfigurationError

__all__ = [
    "PARQUET_FILE",
    "TEMPORARY_FILE",
    "TEMPORARY_FOLDER",
    "DayFile",
    "ExportTarget",
    "open_target",
]

PARQUET_FILE: Final = "part.parquet"
"""A day's file, in ``TABLE/date=YYYY-MM-DD/`` (hive layout)."""

TEMPORARY_FILE: Final = ".part.parquet.tmp"
"""A local day's file while it is written, beside it: hidden (a leading dot) from readers."""

TEMPORARY_FOLDER: Final = "_pmstore_tmp"
"""Off this machine, where a day's file is written before it is copied into place."""

COMPRESSION: Final = "zstd"


@dataclass(frozen=True, slots=True)
class ExportTarget:
    """The root that export writes ``TABLE/date=YYYY-MM-DD/part.parquet`` under.

    ``filesystem`` is None for a local folder (``root`` is then a ``Path``), else a
    ``pyarrow.fs.FileSystem`` and ``root`` its path; ``shown`` is the root for people
    (``scheme://host/path``, no credentials).
    """

    root: Path | str
    filesystem: Any = None
    shown: str = ""

    def table_root(self, table: str) -> Path | str:
        """Where ``table``'s days go: a Path, or a ``scheme://path`` string (no credentials)."""
        if isinstance(self.root, Path):
            return self.root / table
        return self.uri(table)

    def uri(self, *parts: str) -> str:
        """``shown/parts...``: a file or folder as people see it."""
        return "/".join([self.shown, *parts])

    def join(self, *parts: str) -> str:
        """A path inside the filesystem, ``root/parts...``."""
        return "/".join([str(self.root).rstrip("/"), *parts])

    def open_day(self, table: str, day: date, schema: Any) -> DayFile:
        """Start ``day``'s file of ``table``; nothing is visible until ``commit``.
        Raises OSError from the filesystem. Costs one open (S3: one request)."""
        return DayFile(self, table, day, schema)

    def remove_day(self, table: str, day: date) -> None:
        """Delete ``day``'s file (and a stale temporary) if there is one: the day has no rows.
        Raises OSError from the filesystem. Costs a stat and a delete per file."""
        folder = day_folder(day)
        if isinstance(self.root, Path):
            path = self.root / table / folder
            (path / TEMPORARY_FILE).unlink(missing_ok=True)
            if (path / PARQUET_FILE).exists():
                (path / PARQUET_FILE).unlink()
                if not any(path.iterdir()):
                    path.rmdir()
            return
        pafs = require("pyarrow.fs")
        fs = self.filesystem
        for key in (self.temporary(table, day), self.join(table, folder, PARQUET_FILE)):
            if fs.get_file_info(key).type != pafs.FileType.NotFound:
                fs.delete_file(key)
        directory = self.join(table, folder)
        if fs.get_file_info(directory).type == pafs.FileType.Directory and not (
            fs.get_file_info(pafs.FileSelector(directory, recursive=True))
        ):
            fs.delete_dir(directory)  # the marker pyarrow's delete_file left

    def temporary(self, table: str, day: date) -> str:
        """Off this machine, where ``day``'s file of ``table`` is written before it is copied."""
        return self.join(TEMPORARY_FOLDER, f"{table}.{day_folder(day)}.tmp")


def day_folder(day: date) -> str:
    """The hive partition folder of ``day``: ``date=YYYY-MM-DD``."""
    return f"date={day.isoformat()}"


class DayFile:
    """One day's Parquet file being written (zstd, one row group per ``write``); see the
    module notes for where it goes and what it holds in memory."""

    def __init__(self, target: ExportTarget, table: str, day: date, schema: Any) -> None:
        pq = require("pyarrow.parquet")
        self.target = target
        folder = day_folder(day)
        self.sink: Any = None
        if isinstance(target.root, Path):
            directory = target.root / table / folder
            directory.mkdir(parents=True, exist_ok=True)
            self.final: Path | str = directory / PARQUET_FILE
            self.temporary: Path | str = directory / TEMPORARY_FILE
            self.writer = pq.ParquetWriter(self.temporary, schema, compression=COMPRESSION)
            return
        fs = target.filesystem
        self.final = target.join(table, folder, PARQUET_FILE)
        self.temporary = target.temporary(table, day)
        if fs.type_name != "s3":  # object stores have no folders to make
            fs.create_dir(target.join(table, folder), recursive=True)
            fs.create_dir(target.join(TEMPORARY_FOLDER), recursive=True)
        self.sink = fs.open_output_stream(self.temporary)
        try:
            self.writer = pq.ParquetWriter(self.sink, schema, compression=COMPRESSION)
        except BaseException:
            self.abort()
            raise

    def write(self, batch: Any, row_group_size: int) -> None:
        """Append ``batch`` as one row group. Raises OSError from the filesystem."""
        self.writer.write_batch(batch, row_group_size=row_group_size)

    def commit(self) -> Path | str:
        """Finish the file and put it in place of the day's file, atomically.

        Returns its Path (local) or ``scheme://host/path``. Raises OSError from the
        filesystem, or when the temporary object is shorter than what was written
        (the day's previous file stays; call ``abort``). Costs the footer, then a
        rename (local), or a stat, a server-side copy and a delete.
        """
        self.writer.close()
        if isinstance(self.final, Path):
            os.replace(self.temporary, self.final)
            return self.final
        written = self.sink.tell()
        self.sink.close()  # completes the upload of the temporary object
        fs = self.target.filesystem
        stored = fs.get_file_info(self.temporary).size
        if stored != written:
            raise OSError(
                f"the upload of {self.target.uri(self.relative(self.temporary))} is incomplete: "
                f"{stored} of {written} bytes stored"
            )
        fs.copy_file(self.temporary, self.final)
        fs.delete_file(self.temporary)
        return self.target.uri(self.relative(self.final))

    def relative(self, path: Path | str) -> str:
        """``path`` inside the filesystem, relative to the target's root."""
        return str(path).removeprefix(str(self.target.root).rstrip("/") + "/")

    def abort(self) -> None:
        """Drop the temporary file; the day's file stays as it was. Never raises: it runs
        while another error propagates (a temporary it cannot delete is replaced by the
        next run)."""
        # Errors here are dropped: the error being handled is the one to report.
        if hasattr(self, "writer"):
            with suppress(Exception):
                self.writer.close()
        if self.sink is not None:
            with suppress(Exception):
                self.sink.close()
        with suppress(Exception):
            if isinstance(self.temporary, Path):
                self.temporary.unlink(missing_ok=True)
            else:
                self.target.filesystem.delete_file(self.temporary)


def open_target(out: str | os.PathLike[str], filesystem: Any = None) -> ExportTarget:
    """The export destination named by ``out``: a local folder, or a URI (``s3://bucket/
    prefix``, any scheme pyarrow.fs or fsspec knows); with ``filesystem`` (a
    ``pyarrow.fs.FileSystem``), ``out`` is a path inside it.

    Raises ConfigurationError when pyarrow (``pmstore[arrow]``/``[s3]``) or, for a
    scheme pyarrow lacks, fsspec (``pmstore[fsspec]``) is missing, or the URI cannot be
    opened (the message and its chained cause have credentials redacted). Costs no
    request for S3 when a region or endpoint is known (else one to find the bucket's
    region).
    """
    if filesystem is not None:
        pafs = require("pyarrow.fs")
        if isinstance(filesystem, pafs.LocalFileSystem):
            return ExportTarget(Path(out))
        scheme = str(filesystem.type_name).removeprefix("py::fsspec+")
        root = os.fspath(out).rstrip("/")
        return ExportTarget(root, filesystem, f"{scheme}://{root.lstrip('/')}")
    if isinstance(out, os.PathLike) or "://" not in out:
        return ExportTarget(Path(out))
    scheme = urlsplit(out).scheme.lower()
    if scheme == "file":
        return ExportTarget(Path(urlsplit(out).path))
    pafs = require("pyarrow.fs")
    try:
        fs, path = pafs.FileSystem.from_uri(out)
    except Exception as exc:
        if "Unrecognized filesystem type" in str(exc):
            return fsspec_target(out)
        hint = ""
        if "without S3 support" in str(exc):  # a pyarrow built without it (PyPI's has it)
            hint = " (pip install 'pmstore[s3]' installs a pyarrow wheel that has it)"
        raise ConfigurationError(
            f"cannot open export destination {redact_uri(out)}: {redact(str(exc))}{hint}"
        ) from redact_error(exc)
    if fs.type_name == "s3":
        fs = synchronous_s3(pafs, fs)
    return ExportTarget(path.rstrip("/"), fs, redact_uri(out).rstrip("/"))


def synchronous_s3(pafs: Any, fs: Any) -> Any:
    """``fs`` (an S3FileSystem from a URI) with synchronous part uploads: memory holds one
    part, not every part the network has not taken yet. ``from_uri`` cannot set
    ``background_writes``, so the filesystem is rebuilt from the options it pickles
    (those pyarrow resolved from the URI and the environment)."""
    options = dict(fs.__reduce__()[1][0])
    options["background_writes"] = False
    return pafs.S3FileSystem(**options)


def fsspec_target(uri: str) -> ExportTarget:
    """``uri`` through fsspec, wrapped as a pyarrow filesystem."""
    fsspec = require("fsspec")
    pafs = require("pyarrow.fs")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot open export destination {redact_uri(uri)}: {redact(str(exc))}"
        ) from redact_error(exc)
    wrapped = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    return ExportTarget(str(path).rstrip("/"), wrapped, redact_uri(uri).rstrip("/"))


def redact_uri(uri: str) -> str:
    """``uri`` without user, password and query: ``scheme://host/path``."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
