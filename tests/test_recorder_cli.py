"""``pmstore record`` as a process: SIGTERM, kill -9 and restart, a full disk.

The recorder runs as ``python -m pmstore record`` against the simulator (in
this process) and a real TimescaleDB; the tests wait on its log lines (it
logs each commit with ``-v``) and the simulator's facts, never on time.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import TestServer
from recorder_support import (
    CliRecorder,
    assert_every_frame_kept,
    assert_replay_equal,
    dump,
    duplicates,
    gaps,
    read_dir,
)

from pmstore.simulator import Simulator, SimulatorConfig

_names = itertools.count()


@pytest.fixture
def dbs(server: TestServer) -> Iterator[tuple[str, str]]:
    n = next(_names)
    names = (f"t_reccli_live_{n}", f"t_reccli_replay_{n}")
    yield server.migrated_database(names[0]), server.migrated_database(names[1])
    for name in names:
        server.drop_database(name)


def cli_args(sim: Simulator, directory: Path, dsn: str, *extra: str) -> list[str]:
    return [
        "-v", "--dsn", dsn, "--archive", str(directory),
        "--gamma-url", sim.gamma_url, "--clob-url", sim.clob_url, "--ws-url", sim.ws_url,
        "--shard-size", "8", "--snapshot-every", "1", "--price-every", "1",
        "--commit-every", "0.2", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_sigterm_stops_cleanly_with_exit_0(dbs: tuple[str, str], tmp_path: Path) -> None:
    live, replay = dbs
    async with Simulator(SimulatorConfig(markets=4, seed=21)) as sim:
        rec = CliRecorder(cli_args(sim, tmp_path, live))
        await rec.start()
        await sim.wait_connections(1, timeout=60)
        await sim.step(40)
        await rec.wait_line("committed", 5)
        assert rec.proc is not None
        rec.proc.send_signal(signal.SIGTERM)
        code = await rec.finish()
    assert code == 0, rec.output()
    assert "pmstore: stopped:" in rec.output()
    assert not list(tmp_path.glob("*.part")), "the archive file was closed"
    assert_every_frame_kept(read_dir(tmp_path), sim)
    assert {g[3] for g in gaps(live) if g[2] is None} == {"shutdown"}
    # `pmstore ingest` of the archive runs the recorder's deriver: the same rows.
    files = sorted(str(p) for p in tmp_path.glob("pmrec-*.jsonl.gz"))
    done = subprocess.run(
        [sys.executable, "-m", "pmstore", "ingest", "--dsn", replay, "--no-progress", *files],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "recorder archives into" in done.stdout and "records" in done.stdout
    assert dump(live) == dump(replay)


@pytest.mark.asyncio
async def test_kill_9_then_restart_duplicates_nothing_and_the_downtime_is_a_gap(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with Simulator(SimulatorConfig(markets=4, seed=22)) as sim:
        first = CliRecorder(cli_args(sim, tmp_path, live))
        await first.start()
        await sim.wait_connections(1, timeout=60)
        sim.start_rate(100.0)
        await first.wait_line("committed", 10)
        assert first.proc is not None
        first.proc.kill()
        await first.finish()
        killed_at = datetime.now(UTC)
        assert list(tmp_path.glob("*.part")), "a killed recorder leaves its file open"
        opened = len(sim.connections)
        second = CliRecorder(cli_args(sim, tmp_path, live))
        await second.start()
        await second.wait_line("left by a recorder that did not stop cleanly")
        await sim.wait_for(lambda: sum(c.subscribed.is_set() for c in sim.connections) > opened,
                           timeout=60, what="the restarted recorder subscribed")  # fmt: skip
        await second.wait_line("committed", second.count("committed") + 10)
        await sim.stop_rate()
        assert second.proc is not None
        second.proc.send_signal(signal.SIGTERM)
        assert await second.finish() == 0, second.output()
    assert not list(tmp_path.glob("*.part"))
    assert duplicates(live) == dict.fromkeys(duplicates(live), 0)
    down = [g for g in gaps(live) if g[3] == "not_running"]
    tokens = {t for c in sim.connections for t in c.asset_ids}
    assert {g[0] for g in down} == tokens
    for _, started, ended, _ in down:
        assert started <= killed_at
        assert ended is not None and ended > killed_at
    await assert_replay_equal(live, replay, tmp_path)


def _file_limit(size: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.asyncio
async def test_disk_full_is_a_clear_error_and_a_non_zero_exit(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    """RLIMIT_FSIZE makes the archive's writes fail as a full disk does (EFBIG, like
    ENOSPC an OSError from write); the recorder must stop and say so."""
    live, _ = dbs
    async with Simulator(SimulatorConfig(markets=4, seed=23)) as sim:
        rec = CliRecorder(cli_args(sim, tmp_path, live), preexec=lambda: _file_limit(64 << 10))
        await rec.start()
        await sim.wait_connections(1, timeout=60)
        sim.start_rate(200.0)
        code = await rec.finish()
        await sim.stop_rate()
    assert code == 1, rec.output()
    out = rec.output()
    assert "pmstore: error: cannot write the archive" in out
    assert os.strerror(27) in out  # EFBIG: File too large
    [part] = tmp_path.glob("*.part")  # kept for the next run to close
    assert part.stat().st_size <= 64 << 10
