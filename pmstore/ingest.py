"""``pmstore ingest``: files of Polymarket payloads into pmstore's tables.

A file holds one JSON document, a JSON array of payloads, or JSON lines (one
payload per line); any of them may be gzip-compressed (``.gz`` or by magic
bytes). Each payload is recognised and converted by ``pmstore.polymarket``;
records are written through the Writer in batches of ``batch_rows``.

Re-running the same files (with the same ``batch_rows``) writes nothing new:
COPY batches are cut the same way each time, so their content-derived batch
ids are already in the ingest log (a JSON-lines file that grew between runs
re-sends its last partial batch, whose price and book rows, having no natural
key, are then written again); trades are de-duplicated on their key; markets and resolutions are
merged over the whole run (the last payload of a condition id wins) and
upserted once, touching only rows whose values changed.

Each file is read whole into memory before its payloads are converted (a
file that is not JSON is refused before anything of it is written): split
very large dumps into several files.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from pmstore.errors import PayloadError
from pmstore.models import MarketRecord, ResolutionRecord
from pmstore.polymarket import Converted, Reject, convert
from pmstore.writer import Writer

__all__ = ["IngestSummary", "ingest_files", "read_payloads"]

TABLES = ("markets", "resolutions", "price_snapshots", "orderbook_snapshots", "trades")


@dataclass(frozen=True, slots=True)
class Located:
    """A payload and where it came from (file, 1-based line or array index)."""

    path: str
    where: str
    payload: Any


@dataclass(slots=True)
class IngestSummary:
    """What ``ingest_files`` did, per table, and the payloads it could not convert."""

    files: int = 0
    payloads: int = 0
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches_already_written: int = 0
    rejects: list[tuple[Located, Reject]] = field(default_factory=list)


def _open(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if magic == b"\x1f\x8b":
        return gzip.open(raw)  # type: ignore[return-value]
    return raw


def read_payloads(path: Path) -> Iterator[Located]:
    """Yield the payloads of one file (JSON document, JSON array or JSON lines, maybe gzipped).

    A top-level JSON array yields its items (each located by index). Raises
    PayloadError naming the file and line when the file is not JSON.
    """
    with _open(path) as stream:
        text = stream.read().decode("utf-8-sig")
    stripped = text.lstrip()
    if not stripped:
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as as_document:
        yield from _json_lines(path, text, as_document)
        return
    if isinstance(document, list):
        for index, item in enumerate(document):
            yield Located(str(path), f"item {index}", item)
    else:
        yield Located(str(path), "document", document)


def _json_lines(path: Path, text: str, as_document: json.JSONDecodeError) -> Iterator[Located]:
    """Yield one payload per non-empty line; when the first line is not JSON either,
    the file is neither form: report where the whole-document parse failed."""
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            if first:
                raise PayloadError(
                    f"{path}: not JSON (nor JSON lines): line {as_document.lineno} "
                    f"column {as_document.colno}: {as_document.msg}"
                ) from as_document
            raise PayloadError(f"{path}: line {number} is not JSON: {exc.msg}") from exc
        first = False
        yield Located(str(path), f"line {number}", payload)


class _Pending:
    """Records waiting to be written, per table.

    Markets and resolutions are kept for the whole run, keyed by condition id
    (the last payload wins), and upserted once at the end: the same market
    seen in several files (Gamma and CLOB shapes differ slightly) is written
    once, so re-running the same files changes nothing.
    """

    def __init__(self) -> None:
        self.converted = Converted()
        self.markets: dict[str, MarketRecord] = {}
        self.resolutions: dict[str, ResolutionRecord] = {}

    def add(self, converted: Converted) -> None:
        for name in ("prices", "orderbooks", "trades"):
            getattr(self.converted, name).extend(getattr(converted, name))
        self.markets.update((m.condition_id, m) for m in converted.markets)
        for res in converted.resolutions:
            # Same precedence as the upsert: a final 'resolved' is not replaced
            # by a later payload with another status (a stale message).
            kept = self.resolutions.get(res.condition_id)
            if kept is None or kept.status != "resolved" or res.status == "resolved":
                self.resolutions[res.condition_id] = res

    def size(self) -> int:
        return self.converted.record_count


def _flush_upserts(writer: Writer, pending: _Pending, summary: IngestSummary) -> None:
    markets, resolutions = list(pending.markets.values()), list(pending.resolutions.values())
    for start in range(0, len(markets), 5_000):
        summary.written["markets"] += writer.upsert_markets(
            markets[start : start + 5_000]
        ).rows_written
    for start in range(0, len(resolutions), 5_000):
        chunk = resolutions[start : start + 5_000]
        summary.written["resolutions"] += writer.upsert_resolutions(chunk).rows_written
    pending.markets.clear()
    pending.resolutions.clear()


def _flush(writer: Writer, pending: _Pending, summary: IngestSummary) -> None:
    c = pending.converted
    copies: Sequence[tuple[str, Sequence[Any], Callable[..., Any]]] = (
        ("price_snapshots", c.prices, writer.copy_prices),
        ("orderbook_snapshots", c.orderbooks, writer.copy_orderbooks),
        ("trades", c.trades, writer.copy_trades),
    )
    for table, records, copy in copies:
        if records:
            result = copy(records)
            summary.written[table] += result.rows_written
            summary.duplicates[table] += result.duplicates_skipped
            summary.batches_already_written += int(result.already_written)
    pending.converted = Converted()


def ingest_files(
    writer: Writer,
    paths: Sequence[Path],
    *,
    batch_rows: int = 10_000,
    progress: Callable[[int], object] | None = None,
) -> IngestSummary:
    """Convert and write every payload of ``paths``; return what was written and rejected.

    Payloads that cannot be converted are collected as rejects with their
    reasons (never dropped silently); a file that is not JSON raises
    PayloadError before anything of it is written. ``progress`` is called
    with the number of payloads done since the last call. Costs one Writer
    transaction per table per ``batch_rows`` records.
    """
    summary = IngestSummary()
    pending = _Pending()
    for path in paths:
        if not path.is_file():
            raise PayloadError(f"{path}: no such file")
        located = list(read_payloads(path))
        summary.files += 1
        for item in located:
            converted = convert(item.payload)
            summary.payloads += 1
            summary.rejects.extend((item, reject) for reject in converted.rejects)
            pending.add(converted)
            if pending.size() >= batch_rows:
                _flush(writer, pending, summary)
            if progress:
                progress(1)
        _flush(writer, pending, summary)
    _flush_upserts(writer, pending, summary)
    return summary


def write_rejects(rejects: Sequence[tuple[Located, Reject]], out: TextIO) -> None:
    """Write rejects as JSON lines: file, where, kind, reason, ident and the payload."""
    for located, reject in rejects:
        record = {
            "file": located.path,
            "where": located.where,
            "kind": reject.kind,
            "reason": reject.reason,
            "ident": reject.ident,
            "payload": reject.payload,
        }
        out.write(json.dumps(record, default=str) + "\n")
