"""Several reader processes sharing one JSON-lines file (``readers``, ``--readers``).

Reader ``k`` of ``n`` reads the stretches ``k, k + n, ...`` of the file
(``reading.Stretches``) and the ingesting process writes their segments in
file order. In this process (smaller chunks, so that a small file has many
stretches): the stretches' segments meet end to start and hold exactly the
records, rejects and places one reader gives. On a real server, with the
real command: two readers store what one stores, and a run killed after
any commit, or a file that grew, ends with every row once.
"""

from __future__ import annotations

import gzip
import itertools
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import TestServer
from test_ingest_reading import BOM, _awkward
from test_ingest_resume import archive_lines, ingest, state

import pmstore.ingest._sources as sources
from pmstore.ingest import FlushPolicy, ingest_file
from pmstore.ingest._batcher import Segment
from pmstore.ingest._cursor import TRACKED, ResumePoint
from pmstore.ingest._reader_process import ReaderProcess
from pmstore.ingest._reading import Stretches, read_segments, read_stretches
from pmstore.ingest._sources import open_source
from pmstore.polymarket._columnar import Columns
from pmstore.writer import Writer

POLICY = FlushPolicy(batch_rows=1_500, flush_seconds=3600.0)


@pytest.fixture(scope="module")
def big_lines() -> list[bytes]:
    return archive_lines(4_000, seed=8)  # ~4 MB: several 1 MiB chunks


def _merged(segments: list[Segment]) -> tuple[str, list[str], int]:
    """All records of ``segments`` in order, their reject places, their payload count."""
    columns = Columns()
    for segment in segments:
        columns.extend(segment.columns, {*TRACKED, "markets", "resolutions", "rejects"})
    places = [p for s in segments for p in s.reject_places]
    return repr(columns), places, sum(s.payloads for s in segments)


def _shared(
    path: Path, readers: int, start: int = 0, start_line: int = 0, **kw: Any
) -> list[Segment]:
    """The segments of every reader of ``readers``, put in file order."""
    resume = _resume(start, start_line, **kw)
    per_reader = []
    for k in range(readers):
        with open_source(path) as source:
            stretches = Stretches(kw.get("policy", POLICY), readers)
            got = list(read_stretches(source, resume, stretches, k))
            per_reader.append(got)
    ordered = []
    for j in range(sum(len(r) for r in per_reader)):
        ordered.append(per_reader[j % readers][j // readers])
    return ordered


def _single(path: Path, start: int = 0, start_line: int = 0, **kw: Any) -> list[Segment]:
    resume = _resume(start, start_line, **kw)
    with open_source(path) as source:
        return list(read_segments(source, resume, kw.get("policy", POLICY)))


def _resume(start: int, start_line: int, **kw: Any) -> ResumePoint:
    return ResumePoint(
        start, start_line, kw.get("caught_up", 0), kw.get("positions", dict.fromkeys(TRACKED, 0))
    )


def test_stretches_ramp_up_then_span_batch_rows() -> None:
    stretches = Stretches(FlushPolicy(batch_rows=50_000), 2)
    lengths = [stretches.last_chunk(j) - stretches.last_chunk(j - 1) for j in range(1, 6)]
    assert stretches.last_chunk(0) + 1 == 4  # 6,250 records at ~1,500 per chunk
    assert lengths == [8, 17, 33, 33, 33]
    assert [stretches.of(c) for c in (0, 3, 4, 11, 12)] == [0, 0, 1, 1, 2]
    tiny = Stretches(FlushPolicy(batch_rows=10), 3)
    assert [tiny.of(c) for c in range(5)] == [0, 1, 2, 3, 4]  # never less than a chunk


@pytest.mark.parametrize("batch_rows", [1_500, 12_000])  # stretches of 1, or 1-8 chunks
@pytest.mark.parametrize("readers", [2, 3])
@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_stretches_hold_what_one_reader_reads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    big_lines: list[bytes],
    name: str,
    readers: int,
    batch_rows: int,
) -> None:
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64 << 10)  # ~60 chunks
    data = _awkward(big_lines, final_newline=False)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    policy = FlushPolicy(batch_rows=batch_rows, flush_seconds=3600.0)
    one, shared = _single(path), _shared(path, readers, policy=policy)
    assert len(shared) > 3 * readers
    assert shared[0].start == 0 and shared[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(shared))  # they meet
    unterminated = not data.endswith(b"\n")
    for s in shared:  # each one's end line is the line its end is past
        assert s.end_line == data.count(b"\n", 0, s.end) + (unterminated and s.end == len(data))
    assert _merged(shared) == _merged(one)
    assert "not_json" in _merged(shared)[0]  # the bad line's reject is there
    # From a later line, after a kill between the transactions of one segment.
    cut = data.index(b"\n", len(data) // 3) + 1
    before = data[:cut].count(b"\n")
    later = data.index(b"\n", 2 * len(data) // 3) + 1
    kw = {"caught_up": later, "positions": {t: later if t == "trades" else cut for t in TRACKED}}
    resumed = _shared(path, readers, cut, before, policy=policy, **kw)
    assert resumed[0].start == cut and resumed[-1].end == len(data)
    assert _merged(resumed) == _merged(_single(path, cut, before, **kw))


@pytest.mark.parametrize("terminated", [True, False])
def test_a_bom_before_a_first_line_longer_than_the_first_stretch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_lines: list[bytes], terminated: bool
) -> None:
    """The BOM is not part of the first line, but the stretches still meet at byte 0."""
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4 << 10)
    long_line = b'{"event_type": "mystery", "pad": "' + b"x" * (30 << 10) + b'"}'
    data = BOM + long_line + (b"\n" + b"\n".join(big_lines[:200]) + b"\n" if terminated else b"")
    path = tmp_path / "bom.jsonl"
    path.write_bytes(data)
    shared = _shared(path, 2)
    assert shared[0].start == 0 and shared[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(shared))
    assert _merged(shared) == _merged(_single(path))
    assert "mystery" in _merged(shared)[0]  # the long first line was read (and rejected)


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_a_limit_reads_the_file_as_it_was(
    tmp_path: Path, big_lines: list[bytes], name: str
) -> None:
    data = b"\n".join(big_lines) + b"\n"
    path = tmp_path / name
    raw = gzip.compress(data) if name.endswith(".gz") else data
    path.write_bytes(raw)
    limit = len(raw) // 2
    with open_source(path, limit) as source:
        assert source.size == limit
        got = [line for block in source.line_blocks() for line in block.lines]
        assert source.raw_bytes_read <= limit
        truncated = source.truncated_gzip
    assert 0 < len(got) < len(big_lines)
    assert got == big_lines[: len(got)]  # a prefix, line for line
    if name.endswith(".gz"):
        assert truncated  # its compressed stream ends at the limit, before its end marker
    else:
        assert len(b"\n".join(got)) + 1 <= limit < len(b"\n".join(big_lines[: len(got) + 1])) + 1
    with open_source(path, len(raw) + 10) as source:  # a limit past the end: the whole file
        assert [line for block in source.line_blocks() for line in block.lines] == big_lines


def test_a_reader_out_of_range_or_of_a_non_lines_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"event_type": "mystery"}\n')
    with pytest.raises(ValueError, match="reader 2 of 2"):
        ReaderProcess(
            path, ResumePoint(), POLICY, identity=b"", source_format="lines", reader=2, readers=2
        )
    with pytest.raises(ValueError, match="only a JSON-lines file"):
        ReaderProcess(
            path, ResumePoint(), POLICY, identity=b"", source_format="array", reader=0, readers=2
        )


@pytest.fixture(scope="module")
def clean_big(
    server: TestServer, tmp_path_factory: pytest.TempPathFactory, big_lines: list[bytes]
) -> Any:
    """One run of the file read in this process: what the shared reads must store."""
    path = tmp_path_factory.mktemp("clean_big") / "clean.jsonl"
    path.write_bytes(b"\n".join(big_lines) + b"\n")
    dsn = server.migrated_database("t_readers_clean")
    done = ingest(dsn, str(path), "--no-reader-process", "--batch-rows", "1500")
    assert done.returncode == 0, done.stderr
    result = state(dsn)
    server.drop_database("t_readers_clean")
    assert result["price_snapshots"][0] > 4_000
    return result


SHARED = ("--reader-process", "--readers", "2", "--batch-rows", "1500")


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "gzip"])
def test_two_readers_store_what_one_stores(
    server: TestServer, tmp_path: Path, big_lines: list[bytes], clean_big: Any, gz: bool
) -> None:
    data = b"\n".join(big_lines) + b"\n"
    path = tmp_path / ("a.jsonl.gz" if gz else "a.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    dsn = server.migrated_database(f"t_readers_same_{int(gz)}")
    try:
        done = ingest(dsn, str(path), *SHARED)
        assert done.returncode == 0, done.stderr
        assert state(dsn) == clean_big
        again = ingest(dsn, str(path), *SHARED)
        assert "nothing new since the last run" in again.stdout
        bad = ingest(dsn, str(path), "--readers", "0")
        assert bad.returncode != 0 and "--readers must be >= 1" in bad.stderr
    finally:
        server.drop_database(f"t_readers_same_{int(gz)}")


@pytest.mark.parametrize(("kill_after", "resume"), [(1, SHARED), (3, ()), (6, SHARED)])
def test_killed_with_two_readers_then_rerun_writes_every_row_once(
    server: TestServer,
    tmp_path: Path,
    big_lines: list[bytes],
    clean_big: Any,
    kill_after: int,
    resume: tuple[str, ...],
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(big_lines) + b"\n")
    db = f"t_readers_kill_{kill_after}"
    dsn = server.migrated_database(db)
    try:
        killed = ingest(dsn, str(path), *SHARED, kill_after_commit=kill_after)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert state(dsn) != clean_big  # it did stop half way
        done = ingest(dsn, str(path), *resume)  # two readers again, or the defaults
        assert done.returncode == 0, done.stderr
        assert "resumed at" in done.stdout
        assert state(dsn) == clean_big
    finally:
        server.drop_database(db)


def test_a_grown_file_is_continued_by_two_readers_without_duplicates(
    server: TestServer, tmp_path: Path, big_lines: list[bytes], clean_big: Any
) -> None:
    data = b"\n".join(big_lines) + b"\n"
    cut = data.index(b"\n", len(data) // 2) + 40  # the first run sees half a line at the end
    path = tmp_path / "growing.jsonl"
    path.write_bytes(data[:cut])
    dsn = server.migrated_database("t_readers_grown")
    try:
        first = ingest(dsn, str(path), *SHARED)
        assert first.returncode == 0, first.stderr
        half = state(dsn)
        assert half != clean_big and half["price_snapshots"][0] > 0
        path.write_bytes(data)
        done = ingest(dsn, str(path), *SHARED)
        assert done.returncode == 0, done.stderr
        assert state(dsn) == clean_big
    finally:
        server.drop_database("t_readers_grown")


def test_a_file_growing_while_shared_is_read_as_it_was_when_the_run_began(
    server: TestServer, tmp_path: Path, big_lines: list[bytes], clean_big: Any
) -> None:
    """Lines appended after the run opened the file (here: right after its first segment
    was written) are left for the next run by both readers alike."""
    data = b"\n".join(big_lines) + b"\n"
    half = data.index(b"\n", len(data) // 2) + 1
    path = tmp_path / "live.jsonl"
    path.write_bytes(data[:half])
    grown: list[int] = []

    def grow(raw: int, payloads: int, rows: int) -> None:
        if not grown:
            with path.open("ab") as out:
                out.write(data[half:])
            grown.append(raw)

    dsn = server.migrated_database("t_readers_live")
    try:
        with Writer(dsn) as writer:
            first = ingest_file(
                writer, path, policy=POLICY, reader_process=True, readers=2, progress=grow
            )
            assert grown and grown[0] < half  # it grew in the middle of the run
            assert first.payloads == data[:half].count(b"\n")
            second = ingest_file(writer, path, policy=POLICY, reader_process=True, readers=2)
        assert second.resumed and second.resumed_from == half
        assert second.payloads == data[half:].count(b"\n")
        assert state(dsn) == clean_big
    finally:
        server.drop_database("t_readers_live")
