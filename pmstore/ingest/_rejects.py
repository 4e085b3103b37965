"""The rejects file of ``pmstore ingest --rejects FILE``: rejected payload parts, JSON lines.

Each line holds ``file``, ``where`` (``line N``, ``item N`` or ``document``),
``kind``, ``reason``, ``ident`` and the ``payload`` itself (the raw text for
a line that is not JSON). The file is appended to, one ``write`` per
segment on a descriptor opened with ``O_APPEND``, so parallel jobs never
interleave their lines and a re-run never loses earlier ones.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from pmstore.polymarket import Reject

__all__ = ["RejectsFile", "reject_line"]


def reject_line(path: str, where: str, reject: Reject) -> bytes:
    """One JSON line (with its newline) describing ``reject``."""
    record = {
        "file": path,
        "where": where,
        "kind": reject.kind,
        "reason": reject.reason,
        "ident": reject.ident,
        "payload": reject.payload,
    }
    return orjson.dumps(record, default=str) + b"\n"


class RejectsFile:
    """Appends reject lines to one file (created when missing); a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, path: str, places: Sequence[str], rejects: Sequence[Reject]) -> None:
        """Append one line per reject and flush them to disk (fsync)."""
        data = b"".join(reject_line(path, w, r) for w, r in zip(places, rejects, strict=True))
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rejects_file(path: Path | None) -> contextlib.AbstractContextManager[RejectsFile | None]:
    """``RejectsFile(path)`` as a context manager, or one giving None when ``path`` is None."""
    return RejectsFile(path) if path is not None else contextlib.nullcontext()
