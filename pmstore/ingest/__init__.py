"""``pmstore ingest``: recorded files of Polymarket payloads into pmstore's tables.

Streams JSON lines, JSON arrays and JSON documents, gzip-compressed or not
(``_sources``); converts payloads with the columnar fast path of the
Polymarket adapters (``pmstore.polymarket._columnar``); writes segments
flushed by size or time (``_batcher``) through the Writer, each table's batch
in one transaction with that table's resume cursor (``_cursor``, migration
0012); several files in parallel processes (``_parallel``). A run killed at any point and run
again writes every row exactly once; a JSON-lines file that grew since is
continued where the last run stopped. Rejected payload parts go to the
rejects file (``_rejects``) with their reasons.

    from pmstore.ingest import ingest_files
    with Writer(dsn) as writer:
        summary = ingest_files(writer, [Path("ws-2026-11-30.jsonl.gz")], rejects=Path("rej.jsonl"))

"Reader" means two things in pmstore, and here it means the second:

- ``pmstore.reader.Reader`` (and ``AsyncReader``) reads pmstore's tables: queries;
- a *reader process* (``_reader_process.ReaderProcess``, ``--reader-process``,
  ``--readers N``) reads and converts a recorded file in a child process while
  the ingesting process writes.

The modules, in the order a file flows through them: ``_sources`` (streaming
readers of JSON lines, arrays and documents, gzip or not), ``_cursor`` (where
each table of a file got to: ``ResumePoint``), ``_reading`` (the reading loops
and stretches), ``_reader_process`` (the child processes), ``_batcher``
(segments, flushing, the Writer calls), ``_pipeline`` (the writer thread),
``_run`` (one file, many files), ``_parallel`` (files in parallel processes),
``_rejects`` (the rejects file).
"""

from pmstore.ingest._batcher import FlushPolicy
from pmstore.ingest._rejects import RejectsFile
from pmstore.ingest._run import (
    FileSummary,
    IngestProgress,
    IngestSummary,
    ingest_file,
    ingest_files,
)
from pmstore.ingest._sources import BadLine, Item, Source, open_source
from pmstore.polymarket._columnar import Columns, convert_into

__all__ = [
    "BadLine",
    "Columns",
    "FileSummary",
    "FlushPolicy",
    "IngestProgress",
    "IngestSummary",
    "Item",
    "RejectsFile",
    "Source",
    "convert_into",
    "ingest_file",
    "ingest_files",
    "open_source",
]
