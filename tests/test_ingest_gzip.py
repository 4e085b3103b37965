"""gzip archives read alike by ISA-L (isal, the default) and the standard library's gzip.

Whole, broken off (a file still being written), grown and resumed at a
position, corrupt and not gzip at all: the same items, positions and flags
from both readers, and the same errors.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

import pmstore.ingest._sources as sources
from pmstore.errors import PayloadError
from pmstore.ingest._sources import open_source

LINES = [orjson.dumps({"event_type": "book", "n": k, "pad": "x" * (k % 97)}) for k in range(40_000)]
DATA = b"\n".join(LINES) + b"\n"


@pytest.fixture(params=["isal", "stdlib"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(sources, "GzipReader", gzip.GzipFile)
    else:
        assert sources.GzipReader is not gzip.GzipFile  # isal comes with pmstore here
    return str(request.param)


def read(path: Path, start: int = 0, start_line: int = 0) -> tuple[list[Any], Any]:
    with open_source(path) as source:
        items = [(item.payload, item.end, item.number) for item in source.items(start, start_line)]
        return items, (source.truncated_gzip, source.incomplete_tail, source.raw_bytes_read)


def test_a_whole_gzip_file(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(DATA))
    items, (truncated, tail, raw) = read(path)
    assert [p["n"] for p, _, _ in items] == list(range(len(LINES)))
    assert items[-1][1:] == (len(DATA), len(LINES))
    assert not truncated and tail == 0 and raw == path.stat().st_size


def test_a_gzip_stream_that_breaks_off_is_read_up_to_there(tmp_path: Path, reader: str) -> None:
    whole = gzip.compress(DATA)
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    items, (truncated, tail, _) = read(path)
    assert truncated and 0 < len(items) < len(LINES)
    assert [p["n"] for p, _, _ in items] == list(range(len(items)))
    end = items[-1][1]
    assert DATA[:end].endswith(b"\n") and tail > 0  # the partial line is left for the next run


def test_a_grown_gzip_file_resumes_at_a_position(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "a.jsonl.gz"
    half = len(LINES) // 2
    first = b"\n".join(LINES[:half]) + b"\n"
    path.write_bytes(gzip.compress(first))
    done, _ = read(path)
    path.write_bytes(gzip.compress(first) + gzip.compress(DATA[len(first) :]))  # appended member
    rest, (truncated, _, _) = read(path, done[-1][1], done[-1][2])
    assert [p["n"] for p, _, _ in rest] == list(range(half, len(LINES)))
    assert rest[0][2] == half + 1 and not truncated


@pytest.mark.parametrize("damage", ["corrupt", "not gzip"])
def test_a_damaged_gzip_file_is_a_payload_error(tmp_path: Path, reader: str, damage: str) -> None:
    whole = bytearray(gzip.compress(DATA))
    if damage == "corrupt":
        whole[len(whole) // 2] ^= 0xFF
    else:
        whole[3:] = zlib.compress(DATA)  # gzip magic, then no gzip at all
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(PayloadError, match="cannot decompress"):
        read(path)
