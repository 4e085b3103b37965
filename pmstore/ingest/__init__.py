"""``pmstore ingest``: recorded files of Polymarket payloads into pmstore's tables.

Streams JSON lines, JSON arrays and JSON documents, gzip-compressed or not
(``sources``); converts payloads with the columnar fast path of the
Polymarket adapters (``columnar``); writes segments flushed by size or time
(``batcher``) through the Writer, each table's batch in one transaction
with that table's resume cursor (``cursor``, migration 0012); several files
in parallel processes (``parallel``). A run killed at any point and run
again writes every row exactly once; a JSON-lines file that grew since is
continued where the last run stopped. Rejected payload parts go to the
rejects file (``rejects``) with their reasons.

    from pmstore.ingest import ingest_files
    with Writer(dsn) as writer:
        summary = ingest_files(writer, [Path("ws-2026-11-30.jsonl.gz")], rejects=Path("rej.jsonl"))
"""

from pmstore.ingest._batcher import FlushPolicy
from pmstore.ingest._rejects import RejectsFile
from pmstore.ingest._run import FileSummary, IngestSummary, Progress, ingest_file, ingest_files
from pmstore.ingest._sources import BadLine, Item, Source, open_source
from pmstore.polymarket._columnar import Columns, convert_into

__all__ = [
    "BadLine",
    "Columns",
    "FileSummary",
    "FlushPolicy",
    "IngestSummary",
    "Item",
    "Progress",
    "RejectsFile",
    "Source",
    "convert_into",
    "ingest_file",
    "ingest_files",
    "open_source",
]
