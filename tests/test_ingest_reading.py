"""Reading a JSON-lines file into segments: the inlined line loop against the item loop.

``read_segments`` walks a JSON-lines file's raw lines (``Source.line_blocks``)
in a loop of its own; arrays and documents go payload by payload through
``Source.items``. The item loop also reads JSON lines, so the two are run on
the same awkward files and must cut the same segments with the same records,
rejects and places. No server is needed.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_ingest_resume import archive_lines

import pmstore.ingest._sources as sources
from pmstore.ingest import FlushPolicy
from pmstore.ingest._batcher import Segment
from pmstore.ingest._cursor import TRACKED, ResumePoint
from pmstore.ingest._reading import item_segments, line_segments
from pmstore.ingest._sources import open_source

BOM = b"\xef\xbb\xbf"


def _awkward(lines: list[bytes], *, final_newline: bool) -> bytes:
    """A BOM, blank and whitespace-only lines, CRLF, an array of two payloads on one line,
    and (optionally) a last line without its newline."""
    body = list(lines)
    body.insert(3, b"")
    body.insert(7, b"   \t")
    body.insert(11, body[10] + b"\r")
    body.insert(20, b"[" + body[12] + b"," + body[13] + b"]")
    body.insert(30, b"")
    data = BOM + b"\n".join(body)
    return data if not final_newline else data + b"\n\n"


def _segments(path: Path, start: int, start_line: int, inline: bool, **kw: object) -> list[str]:
    policy = FlushPolicy(batch_rows=60, flush_seconds=3600.0)
    caught_up = int(kw.get("caught_up", 0))  # type: ignore[call-overload]
    positions: Any = kw.get("positions", dict.fromkeys(TRACKED, 0))
    resume = ResumePoint(start, start_line, caught_up, positions)
    loop = line_segments if inline else item_segments
    with open_source(path) as source:
        assert source.format == "lines"
        got = list(loop(source, resume, policy, None))
        tail = source.incomplete_tail
    return [_describe(s) for s in got] + [f"incomplete_tail={tail}"]


def _describe(segment: Segment) -> str:
    return repr(
        (segment.start, segment.end, segment.end_line, segment.payloads, segment.reject_places,
         segment.columns)
    )  # fmt: skip


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return archive_lines(400, seed=11)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 KiB chunks: lines cross chunk boundaries all through a small file."""
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4 << 10)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("final_newline", [True, False])
@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_the_line_loop_cuts_what_the_item_loop_cuts(
    tmp_path: Path, lines: list[bytes], name: str, final_newline: bool
) -> None:
    data = _awkward(lines, final_newline=final_newline)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    inline = _segments(path, 0, 0, inline=True)
    assert inline == _segments(path, 0, 0, inline=False)
    assert len(inline) > 8  # several segments were cut
    assert any("not_json" in s for s in inline)  # the bad line was rejected, not lost
    # From a later line boundary, with the tables' cursors apart (a kill between them).
    cut = data.index(b"\n", len(data) // 3) + 1
    before = data[:cut].count(b"\n")
    later = data.index(b"\n", 2 * len(data) // 3) + 1
    positions = {t: (later if t == "price_snapshots" else cut) for t in TRACKED}
    kw = {"caught_up": later, "positions": positions}
    assert _segments(path, cut, before, True, **kw) == _segments(path, cut, before, False, **kw)


@pytest.mark.usefixtures("small_chunks")
def test_line_blocks_give_back_every_byte_line_and_offset(
    tmp_path: Path, lines: list[bytes]
) -> None:
    data = _awkward(lines, final_newline=False)
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    seen: list[tuple[int, int, bytes]] = []
    with open_source(path) as source:
        for block in source.line_blocks():
            offset, number = block.offset, block.number
            for line in block.lines:
                number += 1
                offset += len(line) + (0 if block.final else 1)
                seen.append((number, offset, line))
    assert seen[0][2] == data[len(BOM) :].split(b"\n")[0]  # the BOM is not part of line 1
    assert [line for _, _, line in seen] == data[len(BOM) :].split(b"\n")
    assert [n for n, _, _ in seen] == list(range(1, len(seen) + 1))
    ends = [end for _, end, _ in seen]
    assert all(data[:end].endswith(line + b"\n") for _, end, line in seen[:-1])  # past its newline
    assert ends == sorted(set(ends))
    assert seen[-1][1] == len(data)  # the last line ends the file (no newline after it)
    orjson.loads(seen[-1][2])  # and it was yielded because it is JSON


def test_an_unterminated_last_line_that_is_not_json_yet_is_left(
    tmp_path: Path, lines: list[bytes]
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines[:50]) + b"\n" + lines[50][:40])
    with open_source(path) as source:
        blocks = list(source.line_blocks())
        assert source.incomplete_tail == 40
    assert not any(block.final for block in blocks)
    assert sum(len(block.lines) for block in blocks) == 50


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("inline", [True, False])
def test_a_last_line_terminated_since_the_last_run_ends_that_line(
    tmp_path: Path, lines: list[bytes], newline: bytes, inline: bool
) -> None:
    """The last run took line 1 unterminated; its newline arrives later and belongs to it:
    the next lines are 2 and 3, not 3 and 4 (the rejected line says where it is)."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines[0])
    first = _segments(path, 0, 0, inline)
    assert f"(0, {len(lines[0])}, 1, 1," in first[0]  # one payload, line 1, to the end
    path.write_bytes(lines[0] + newline + lines[1] + b"\n{nope\n")
    later = _segments(path, len(lines[0]), 1, inline)
    assert "['line 3']" in later[0]  # the reject's place
    assert f", {len(path.read_bytes())}, 3, 2," in later[0]  # ends after line 3, 2 payloads
