"""``pmstore ingest`` with a reader process: the same rows, resumes and errors as without one.

The reader process is forced (``reader_process=True``, ``--reader-process``)
on small files; on a real server. Kills are the resume test's deterministic
``fault_proxy`` (SIGKILL once the server committed the N-th writing transaction).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from conftest import TestServer
from fault_proxy import pg_proxy
from test_ingest_resume import archive_lines, ingest, state

from pmstore.cli.ingest import IngestBar
from pmstore.errors import IngestError, PayloadError
from pmstore.ingest import FlushPolicy, RejectsFile, ingest_file
from pmstore.ingest._cursor import ResumePoint
from pmstore.ingest._reader_process import ReaderProcess, StartMethod, default_start_method
from pmstore.ingest._reading import read_segments
from pmstore.ingest._sources import open_source
from pmstore.writer import Writer


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return archive_lines(1_500, seed=5)


def _write_file(path: Path, lines: list[bytes], *, tail: bytes = b"") -> Path:
    data = b"\n".join(lines) + b"\n" + tail
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _summary(summary: Any) -> dict[str, Any]:
    fields = dataclasses.asdict(summary)
    del fields["seconds"], fields["write_seconds"]
    return fields


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_reader_process_gives_the_rows_and_summary_of_the_thread(
    server: TestServer, tmp_path: Path, lines: list[bytes], name: str
) -> None:
    path = _write_file(tmp_path / name, lines, tail=b'{"event_type": "book", "asse')
    results = {}
    for forced in (False, True):
        db = f"t_reader_proc_same_{int(forced)}_{int(name.endswith('.gz'))}"
        dsn = server.migrated_database(db)
        rejects = tmp_path / f"rejects-{forced}.jsonl"
        reports: list[tuple[int, int, int]] = []
        try:
            out = RejectsFile(rejects)
            try:
                with Writer(dsn) as writer:
                    summary = ingest_file(
                        writer,
                        path,
                        policy=FlushPolicy(batch_rows=300),
                        rejects=out,
                        progress=lambda *r, into=reports: into.append(r),
                        reader_process=forced,
                    )
            finally:
                out.close()
            totals = [sum(r[i] for r in reports) for i in range(3)]
            results[forced] = (state(dsn), _summary(summary), rejects.read_text(), totals)
        finally:
            server.drop_database(db)
    assert results[True] == results[False]
    got = results[True]
    assert got[0]["orderbook_snapshots"][0] > 100 and got[0]["trades"][0] > 20
    assert got[1]["rejects"] == 2 and got[1]["payloads"] == len(lines)
    assert got[1]["general_path"] == 1  # counted in the reader process as in the thread
    if not name.endswith(".gz"):
        assert got[1]["incomplete_tail"] > 0
    assert got[3] == [path.stat().st_size, len(lines), sum(got[1]["rows"].values())]
    assert not multiprocessing.active_children()


def _reader_processes(mark: str) -> list[int]:
    """Live processes whose environment holds ``mark`` (the ingest's children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if mark.encode() in environ and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _wait_for_exit(pid: int) -> None:
    """Block until process ``pid`` (not our child) has exited: its pidfd turns readable
    then (bounded at 60 s, after which the caller's assertion fails)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(60_000)
    finally:
        os.close(fd)


@pytest.mark.skipif(
    not Path("/proc/self/environ").is_file(),
    reason="needs /proc/<pid>/environ (Linux) to find the ingest's reader process by its mark",
)
@pytest.mark.parametrize("kill_after", [2, 5])
def test_killed_with_a_reader_process_then_rerun_writes_every_row_once(
    server: TestServer, tmp_path: Path, lines: list[bytes], kill_after: int
) -> None:
    path = _write_file(tmp_path / "a.jsonl", lines)
    clean_db, db = f"t_reader_proc_clean_{kill_after}", f"t_reader_proc_kill_{kill_after}"
    clean, dsn = server.migrated_database(clean_db), server.migrated_database(db)
    mark = f"PMSTORE_TEST_MARK={uuid.uuid4().hex}"
    try:
        assert ingest(clean, str(path), "--batch-rows", "400").returncode == 0
        env = {k: v for k, v in os.environ.items() if k != "PMSTORE_DSN"}
        env["PMSTORE_TEST_MARK"] = mark.partition("=")[2]
        with pg_proxy(dsn) as proxy:
            proxy.kill_after_writes(kill_after, Writer.APPLICATION_NAME)
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "pmstore", "ingest", "--dsn", proxy.dsn(dsn),
                 "--no-progress", "--reader-process", "--batch-rows", "400", str(path)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            proxy.victim(proc.pid)
            out, err = proc.communicate(timeout=600)
        killed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        # The child gets SIGKILL as its parent exits: wait for each one's exit (pidfd).
        for pid in _reader_processes(mark):
            _wait_for_exit(pid)
        assert _reader_processes(mark) == []
        assert state(dsn) != state(clean)  # it did stop half way
        done = ingest(dsn, str(path), "--reader-process", "--batch-rows", "250")
        assert done.returncode == 0, done.stderr
        assert "resumed at" in done.stdout
        assert state(dsn) == state(clean)
    finally:
        server.drop_database(clean_db)
        server.drop_database(db)


def test_an_error_in_the_reader_process_is_raised_with_its_type(
    server: TestServer, tmp_path: Path, lines: list[bytes]
) -> None:
    payloads = [orjson.loads(line) for line in lines[:600] if line != b"{not json"]
    text = json.dumps(payloads)
    path = tmp_path / "broken.json"
    path.write_text(text[: len(text) * 2 // 3])  # an array that breaks off
    messages = {}
    for forced in (False, True):
        dsn = server.migrated_database(f"t_reader_proc_error_{int(forced)}")
        try:
            with Writer(dsn) as writer, pytest.raises(PayloadError) as raised:
                ingest_file(writer, path, policy=FlushPolicy(batch_rows=200), reader_process=forced)
            messages[forced] = str(raised.value.reason)
            written = state(dsn)
        finally:
            server.drop_database(f"t_reader_proc_error_{int(forced)}")
        assert written["price_snapshots"][0] > 0  # the segments before the error were written
        assert not multiprocessing.active_children()
    assert messages[True] == messages[False]
    assert "not a JSON array after item" in messages[True]


def _reader(
    path: Path,
    *,
    identity: bytes | None = None,
    policy: FlushPolicy | None = None,
    start_method: StartMethod | None = None,
) -> ReaderProcess:
    with open_source(path) as source:
        head, form = source.identity, source.format
    return ReaderProcess(
        path,
        ResumePoint(),
        policy or FlushPolicy(batch_rows=100),
        identity=identity or head,
        source_format=form,
        start_method=start_method,
    )


START_METHODS: list[StartMethod] = (
    ["fork", "spawn"] if sys.platform.startswith("linux") else ["spawn"]
)


def test_a_reader_process_is_forked_only_while_this_process_runs_one_thread() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert default_start_method() == "spawn"  # another thread could hold a lock
    finally:
        release.set()
        other.join()
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        assert default_start_method() == "fork"
    elif not sys.platform.startswith("linux"):
        assert default_start_method() == "spawn"


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs multiprocessing's fork start method, which this platform lacks",
)
def test_a_forked_reader_leaves_the_parents_connection_alone(
    server: TestServer, tmp_path: Path, lines: list[bytes]
) -> None:
    """The child inherits the connection's socket; ending (normally or killed) sends nothing
    on it, so the parent's session goes on."""
    path = _write_file(tmp_path / "a.jsonl", lines)
    with psycopg.connect(server.dsn("postgres")) as conn:
        backend = conn.info.backend_pid
        with _reader(path, start_method="fork") as reader:
            segments = list(reader.segments())
        assert sum(s.payloads for s, _ in segments) == len(lines)
        with _reader(path, start_method="fork") as reader:
            next(reader.segments())
            assert reader.pid is not None
            os.kill(reader.pid, signal.SIGKILL)
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (backend,)


def test_the_progress_bar_starts_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    with IngestBar([tmp_path], out=io.StringIO()) as bar:
        bar(10, 1, 1)
        assert threading.active_count() == before  # no tqdm monitor: forking stays possible


def test_reader_process_refuses_a_file_replaced_since_the_parent_opened_it(
    tmp_path: Path, lines: list[bytes]
) -> None:
    path = _write_file(tmp_path / "a.jsonl", lines[:50])
    with _reader(path, identity=b"other bytes") as reader, pytest.raises(PayloadError) as raised:
        list(reader.segments())
    assert "was replaced while being ingested" in str(raised.value.reason)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("start_method", START_METHODS)
def test_reader_process_ended_early_is_an_error_and_leaving_ends_it(
    tmp_path: Path, lines: list[bytes], start_method: StartMethod
) -> None:
    path = _write_file(tmp_path / "a.jsonl", lines)
    with _reader(path, start_method=start_method) as reader:
        assert reader.start_method == start_method
        segments = reader.segments()
        first, _ = next(segments)
        assert first.batches is not None and first.payloads > 0
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
        with pytest.raises(IngestError, match="reader process ended unexpectedly"):
            for _ in segments:
                pass
    assert not multiprocessing.active_children()
    with _reader(path, start_method=start_method) as reader:  # left after one segment: ended
        next(reader.segments())
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_runs_first_segments_ramp_up_and_both_readers_cut_them_alike(
    tmp_path: Path, lines: list[bytes], start_method: StartMethod
) -> None:
    """1/8, 1/4, 1/2 of batch_rows, then batch_rows: writing starts soon after reading."""
    path = _write_file(tmp_path / "a.jsonl", lines)
    policy = FlushPolicy(batch_rows=400, flush_seconds=3600.0)
    with open_source(path) as source:
        here = list(read_segments(source, ResumePoint(), policy))
    counts = [sum(n for t, n in s.counts().items() if t != "rejects") for s in here]
    assert len(counts) > 6
    for cut, count in zip([50, 100, 200, 400, 400, 400], counts, strict=False):
        assert cut <= count < cut + 10  # a payload gives at most a few records
    assert all(count < 410 for count in counts)
    with _reader(path, policy=policy, start_method=start_method) as reader:
        there = [segment for segment, _ in reader.segments()]
    assert [(s.start, s.end) for s in there] == [(s.start, s.end) for s in here]
