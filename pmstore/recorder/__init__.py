"""``pmstore record``: a live Polymarket market-channel recorder that never loses a minute silently.

Archive first: every WebSocket frame and every REST response that yields
rows is appended verbatim to a gzip JSON-lines archive
(:mod:`~pmstore.recorder.archive`) before anything else; one deterministic
deriver (:mod:`~pmstore.recorder.derive`) turns the archive's records into
rows (markets, resolutions, trades, price and order-book snapshots, feed
gaps); the rows go through the AsyncWriter with a cursor per archive file
and table (``pmstore.recorder._sink``), so they are written exactly
once, live or by ``pmstore ingest`` of the archive, which gives the same
rows. docs/recorder.md describes the format, the rules and running it.

    from pmstore.recorder import Recorder, RecorderConfig
    async with Recorder(RecorderConfig(archive_dir=Path("archive"), dsn=dsn)) as rec:
        await rec.ready.wait()
        await rec.wait()              # until rec.stop() (the CLI: SIGTERM / SIGINT)

Gaps and the recorder's health for other commands: :mod:`~pmstore.recorder.health`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmstore.recorder._recorder import Recorder, RecorderConfig, RecorderStats
    from pmstore.recorder._sink import CommitInfo
    from pmstore.recorder.archive import ArchiveHeader, is_archive, read_archive
    from pmstore.recorder.derive import GAP_REASONS, DeriveParams, Deriver, Rows
    from pmstore.recorder.replay import ArchiveSummary, ingest_archives

__all__ = [
    "GAP_REASONS",
    "ArchiveHeader",
    "ArchiveSummary",
    "CommitInfo",
    "DeriveParams",
    "Deriver",
    "Recorder",
    "RecorderConfig",
    "RecorderStats",
    "Rows",
    "ingest_archives",
    "is_archive",
    "read_archive",
]

_LAZY: dict[str, tuple[str, str]] = {
    "GAP_REASONS": ("pmstore.recorder.derive", "GAP_REASONS"),
    "ArchiveHeader": ("pmstore.recorder.archive", "ArchiveHeader"),
    "ArchiveSummary": ("pmstore.recorder.replay", "ArchiveSummary"),
    "CommitInfo": ("pmstore.recorder._sink", "CommitInfo"),
    "DeriveParams": ("pmstore.recorder.derive", "DeriveParams"),
    "Deriver": ("pmstore.recorder.derive", "Deriver"),
    "Recorder": ("pmstore.recorder._recorder", "Recorder"),
    "RecorderConfig": ("pmstore.recorder._recorder", "RecorderConfig"),
    "RecorderStats": ("pmstore.recorder._recorder", "RecorderStats"),
    "Rows": ("pmstore.recorder.derive", "Rows"),
    "ingest_archives": ("pmstore.recorder.replay", "ingest_archives"),
    "is_archive": ("pmstore.recorder.archive", "is_archive"),
    "read_archive": ("pmstore.recorder.archive", "read_archive"),
}
"""Public names imported on first use (PEP 562): ``pmstore.recorder.health`` (what
``pmstore status``, ``pmstore coverage`` and the Reader read) costs no aiohttp."""


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pmstore.recorder' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
