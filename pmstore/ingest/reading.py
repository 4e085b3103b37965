"""Reading one file into segments: parse, convert, cut by the flush policy.

``read_segments`` is the whole reading side of ``pmstore ingest``: the same
function runs in the ingesting process (segments handed to a writer thread)
or in a reader process (``pmstore.ingest.reader_process``), so both give the
same segments, cut at the same places, for the same start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

import orjson

from pmstore.ingest.batcher import FlushPolicy, Segment
from pmstore.ingest.cursor import TRACKED
from pmstore.ingest.sources import BadLine, Item, Source
from pmstore.polymarket import Reject
from pmstore.polymarket.columnar import Columns, convert_into, convert_line

__all__ = ["PROGRESS_EVERY", "read_segments"]

PROGRESS_EVERY: Final = 2_048
"""Payloads between progress ticks (and flush-time checks)."""


def read_segments(
    source: Source,
    start: int,
    start_line: int,
    caught_up: int,
    positions: Mapping[str, int],
    policy: FlushPolicy,
    tick: Callable[[], object] | None = None,
) -> Iterator[Segment]:
    """Yield the segments of ``source`` after ``start``, each when ``policy`` says it is due
    (the first ones smaller: ``FlushPolicy.rows_for``).

    ``start_line`` is the number of lines before ``start``; items ending at or
    before ``caught_up`` keep only the tables whose loaded cursor position
    (``positions``) is before them (a run killed between the transactions
    of one segment). The last segment is always yielded, possibly empty.
    ``tick`` is called every ``PROGRESS_EVERY`` payloads between segments.
    Raises what ``Source.items`` raises (PayloadError); costs one parse and
    one conversion per payload (lines of the hot kinds: one typed decode,
    ``columnar.convert_line``).
    """
    segment = Segment(start, start, start_line)
    columns = segment.columns
    countdown = PROGRESS_EVERY
    index = 0
    rows = policy.rows_for(index)
    for item in source.items(start, start_line, raw_lines=True):
        if item.end <= caught_up:  # after a kill: some tables are past this item
            _catch_up(item, segment, positions)
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
    elif type(payload) is BadLine:
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
