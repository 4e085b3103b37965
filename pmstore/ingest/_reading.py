"""Reading one file into segments: parse, convert, cut by the flush policy.

``read_segments`` is the whole reading side of ``pmstore ingest``: the same
function runs in the ingesting process (segments handed to a writer thread)
or in a reader process (``pmstore.ingest._reader_process``), so both give the
same segments, cut at the same places, for the same start. A JSON-lines
file is walked line by line over ``Source.line_blocks`` (no object per line
but the hot kinds' decoded structs); arrays and documents payload by payload.

``read_stretches`` is one reader's share when several reader processes read
one JSON-lines file: the file is cut into stretches of whole chunks
(``Stretches``), reader ``k`` of ``n`` converts stretches ``k, k + n, ...``
and only reads past the others, and the ingesting process writes the
stretches' segments in file order (``reader_process.interleaved``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

from pmstore.ingest._batcher import FlushPolicy, Segment
from pmstore.ingest._cursor import TRACKED, ResumePoint
from pmstore.ingest._sources import BadLine, Item, Source
from pmstore.polymarket import Reject
from pmstore.polymarket._columnar import Columns, append_hot_line, convert_into, convert_line

__all__ = ["PROGRESS_EVERY", "ROWS_PER_CHUNK", "Stretches", "read_segments", "read_stretches"]

PROGRESS_EVERY: Final = 2_048
"""Payloads between progress ticks (and flush-time checks)."""


def read_segments(
    source: Source,
    resume: ResumePoint,
    policy: FlushPolicy,
    tick: Callable[[], object] | None = None,
) -> Iterator[Segment]:
    """Yield the segments of ``source`` from ``resume``, each when ``policy`` says it is due
    (the first ones smaller: ``FlushPolicy.rows_for``).

    Items ending at or before ``resume.caught_up`` keep only the tables whose
    loaded cursor position is before them (a run killed between the
    transactions of one segment: ``ResumePoint``). The last segment is
    always yielded, possibly empty. ``tick`` is called every ``PROGRESS_EVERY``
    payloads between segments. Raises what ``Source.items`` raises
    (PayloadError); costs one parse and one conversion per payload (lines of
    the hot kinds: one typed decode, ``_columnar.append_hot_line``, in a loop
    over the file's raw lines; an unusual one is decoded again on the general
    path, then parsed by orjson).
    """
    if source.format == "lines":
        return line_segments(source, resume, policy, tick)
    return item_segments(source, resume, policy, tick)


def line_segments(
    source: Source,
    resume: ResumePoint,
    policy: FlushPolicy,
    tick: Callable[[], object] | None,
) -> Iterator[Segment]:
    """``read_segments`` of a JSON-lines file: the same segments as ``item_segments``
    would cut, with the per-line work inlined (no ``Item`` per line; hot lines go
    straight to ``append_hot_line``)."""
    start, start_line = resume.offset, resume.line
    segment = Segment(start, start, start_line)
    columns = segment.columns
    index, rows, countdown, payloads = 0, policy.rows_for(0), PROGRESS_EVERY, 0
    end, end_line = start, start_line
    for lines, offset, number, _, final in source.line_blocks(start, start_line):
        newline = 0 if final else 1
        for line in lines:
            number += 1
            offset += len(line) + newline
            if not line or line.isspace():
                continue
            _take(line, offset, number, resume, segment)
            end, end_line = offset, number
            payloads += 1
            countdown -= 1
            if countdown <= 0 or columns.record_count() >= rows:
                countdown = PROGRESS_EVERY
                segment.end, segment.end_line, segment.payloads = end, end_line, payloads
                if policy.due(segment, rows):
                    yield segment
                    segment = Segment(end, end, end_line)
                    columns = segment.columns
                    index, payloads = index + 1, 0
                    rows = policy.rows_for(index)
                elif tick is not None:
                    tick()
    segment.end, segment.end_line, segment.payloads = end, end_line, payloads
    yield segment


ROWS_PER_CHUNK: Final = 1_500
"""Records a ``CHUNK_BYTES`` chunk of a recorded market stream gives, roughly (1,557 for
the benchmark's realistic mix): how many chunks a stretch of ``batch_rows`` spans."""


@dataclass(slots=True)
class Stretches:
    """How a JSON-lines file is shared among ``readers`` reader processes: in stretches of
    consecutive chunks, stretch ``j`` read by reader ``j % readers``.

    A stretch spans about what ``FlushPolicy.rows_for(j)`` records take
    (``ROWS_PER_CHUNK``), at least one chunk: the ramp of the first
    segments, then ``batch_rows``. Its segment is cut where the stretch ends,
    whatever its records, so every reader knows where every stretch begins
    without reading it.
    """

    policy: FlushPolicy
    readers: int
    _starts: list[int] = field(default_factory=lambda: [0])

    def of(self, chunk: int) -> int:
        """The stretch chunk number ``chunk`` (0: the first read) belongs to."""
        while self._starts[-1] <= chunk:
            self._grow()
        return bisect.bisect_right(self._starts, chunk) - 1

    def last_chunk(self, stretch: int) -> int:
        """The number of the last chunk of ``stretch``."""
        while len(self._starts) <= stretch + 1:
            self._grow()
        return self._starts[stretch + 1] - 1

    def _grow(self) -> None:
        rows = self.policy.rows_for(len(self._starts) - 1)
        self._starts.append(self._starts[-1] + max(1, round(rows / ROWS_PER_CHUNK)))


def read_stretches(
    source: Source,
    resume: ResumePoint,
    stretches: Stretches,
    reader: int,
) -> Iterator[Segment]:
    """Yield the segments of the stretches of a JSON-lines file that ``reader`` (0, 1, ...
    of ``stretches.readers``) reads, in order, each when its last chunk is read.

    What each holds is what ``read_segments`` would give for the same lines
    (the same conversion, catch-up after a kill, rejects and places); only
    the cuts differ (``Stretches``). Each segment ends where its stretch ends
    (past any blank lines there), so consecutive stretches' segments meet.
    No segment is yielded for a stretch past the end of the file. Raises
    what ``Source.line_blocks`` raises; the chunks of the other readers cost
    a read and a ``bytes.count`` each.
    """
    readers = stretches.readers
    start, start_line = resume.offset, resume.line
    segment = Segment(start, start, start_line)
    current, pending = -1, False
    for lines, offset, number, chunk, final in source.line_blocks(
        start, start_line, lambda n: stretches.of(n) % readers == reader
    ):
        stretch = stretches.of(chunk)
        if stretch != current:  # its first chunk (the last one yielded the one before)
            begins = start if number == start_line else offset  # no line ended yet: no BOM
            segment, current, pending = Segment(begins, begins, number), stretch, True
        newline, payloads = 0 if final else 1, 0
        for line in lines:
            number += 1
            offset += len(line) + newline
            if not line or line.isspace():
                continue
            _take(line, offset, number, resume, segment)
            payloads += 1
        segment.end, segment.end_line = offset, number
        segment.payloads += payloads
        if chunk == stretches.last_chunk(stretch):
            yield segment
            pending = False
    if pending:  # the file ended inside the last stretch
        yield segment


def _take(line: bytes, end: int, number: int, resume: ResumePoint, segment: Segment) -> None:
    """Convert a non-blank JSON-lines line ending at ``end`` into ``segment``: only the
    tables still behind it when a killed run got past it (``resume.caught_up``), else by the
    fast path, else the general one."""
    if end <= resume.caught_up:  # after a kill: some tables are past this line
        _catch_up(Item(line, end, number, "line"), segment, resume.positions)
    elif not append_hot_line(line, segment.columns):  # not hot, or unusual: general path
        _convert(Item(line, end, number, "line"), segment.columns, segment)


def item_segments(
    source: Source,
    resume: ResumePoint,
    policy: FlushPolicy,
    tick: Callable[[], object] | None,
) -> Iterator[Segment]:
    """``read_segments`` of a JSON array or document, payload by payload."""
    start, start_line = resume.offset, resume.line
    segment = Segment(start, start, start_line)
    columns = segment.columns
    countdown = PROGRESS_EVERY
    index = 0
    rows = policy.rows_for(index)
    for item in source.items(start, start_line):
        if item.end <= resume.caught_up:  # after a kill: some tables are past this item
            _catch_up(item, segment, resume.positions)
        else:
            _convert(item, columns, segment)
        segment.end, segment.end_line = item.end, item.number
        segment.payloads += 1
        countdown -= 1
        if countdown <= 0 or columns.record_count() >= rows:
            countdown = PROGRESS_EVERY
            if policy.due(segment, rows):
                yield segment
                segment = Segment(segment.end, segment.end, segment.end_line)
                columns = segment.columns
                index += 1
                rows = policy.rows_for(index)
            elif tick is not None:
                tick()
    yield segment


def _convert(item: Item, columns: Columns, segment: Segment) -> None:
    before = len(columns.rejects)
    payload = item.payload
    if type(payload) is bytes:  # a JSON-lines line (most payloads): parsed by convert_line
        try:
            convert_line(payload, columns)
        except orjson.JSONDecodeError as exc:
            _not_json(BadLine.of(payload, exc), columns)
    elif type(payload) is BadLine:  # a line that Source.items parsed and found not JSON
        _not_json(payload, columns)
    else:
        convert_into(payload, columns)
    added = len(columns.rejects) - before
    if added:
        segment.reject_places.extend([item.where] * added)


def _not_json(line: BadLine, columns: Columns) -> None:
    columns.rejects.append(
        Reject("not_json", f"not JSON: {line.error}", line.text[:120], line.text)
    )


def _catch_up(item: Item, segment: Segment, positions: Mapping[str, int]) -> None:
    """Convert ``item`` but keep only the tables whose cursor is before it."""
    scratch = Columns()
    _convert(item, scratch, Segment(0, 0, 0))
    tables = {t for t in TRACKED if positions[t] < item.end}
    if "rejects" in tables:
        segment.reject_places.extend([item.where] * len(scratch.rejects))
    segment.columns.extend(scratch, tables)
