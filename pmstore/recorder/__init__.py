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
