"""Helpers of the recorder tests: the simulator and a recorder on it, the archive's frames,
table dumps for replay equality, a TCP proxy that can take the database away.

Nothing here replaces a part of pmstore: the recorder runs for real against
the simulator's real sockets and a real TimescaleDB.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore.recorder import Recorder, RecorderConfig, ingest_archives, read_archive
from pmstore.recorder.archive import closed_files
from pmstore.simulator import Connection, Simulator, SimulatorConfig

TABLE_QUERIES = {
    "price_snapshots": "SELECT ts, token_id, price, volume_24h FROM price_snapshots",
    "orderbook_snapshots": (
        "SELECT ts, token_id, bids::text, asks::text, spread, midpoint FROM orderbook_snapshots"
    ),
    "trades": "SELECT ts, token_id, side, price, size, trade_id FROM trades",
    "markets": (
        "SELECT condition_id, question, slug, market_type, outcomes, clob_token_ids, active, "
        "closed, end_date_iso FROM markets"
    ),
    "resolutions": (
        "SELECT condition_id, outcome, winner_token_id, resolved_at, payout_price, "
        "detection_method, status FROM resolutions"
    ),
    "feed_gaps": "SELECT token_id, started_at, ended_at, reason FROM feed_gaps",
}
"""Every data column of the tables the recorder writes (markets' and resolutions' write
times are the server's clock, not data)."""


def dump(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, sorted (a multiset: duplicates stay)."""
    with psycopg.connect(dsn) as conn:
        return {
            table: sorted(conn.execute(query).fetchall(), key=repr)
            for table, query in TABLE_QUERIES.items()
        }


def duplicates(dsn: str) -> dict[str, int]:
    """Rows that appear more than once, per table."""
    out = {}
    for table, rows in dump(dsn).items():
        out[table] = len(rows) - len({repr(r) for r in rows})
    return out


def gaps(dsn: str) -> list[tuple[str, Any, Any, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT token_id, started_at, ended_at, reason FROM feed_gaps ORDER BY started_at"
        ).fetchall()
    return [(str(r[0]), r[1], r[2], str(r[3])) for r in rows]


@dataclass
class ArchiveView:
    """What the archive holds: frames and initial subscriptions per (connection, epoch)."""

    frames: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    initial: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def read_dir(directory: Path, *, parts: bool = False) -> ArchiveView:
    """Every record of the closed files (and ``.part`` ones with ``parts``), in order."""
    view = ArchiveView()
    paths = [f.path for f in closed_files(directory)]
    if parts:
        paths += sorted(directory.glob("*.part"))
    for path in paths:
        _, records = read_archive(path)
        for record in records:
            view.records.append(record)
            view.kinds.append(str(record.get("k")))
            key = (int(record.get("c", -1)), int(record.get("e", 0)))
            if record.get("k") == "frame":
                view.frames.setdefault(key, []).append(str(record["d"]))
            elif record.get("k") == "sub" and record.get("op") == "initial":
                view.initial[key] = list(record["a"])
    return view


def match_connections(
    view: ArchiveView, connections: list[Connection]
) -> dict[int, tuple[int, int]]:
    """Simulator connection id -> the archive's (connection, epoch), matched by the initial
    subscription (its asset list) in order of opening."""
    by_assets: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for key in sorted(view.initial, key=lambda k: (k[0], k[1])):
        by_assets.setdefault(tuple(view.initial[key]), []).append(key)
    out: dict[int, tuple[int, int]] = {}
    for conn in sorted(connections, key=lambda c: c.id):
        if not conn.received or conn.received[0].text is None:
            continue
        first = orjson.loads(conn.received[0].text)
        keys = by_assets.get(tuple(first.get("assets_ids", ())), [])
        if keys:
            out[conn.id] = keys.pop(0)
    return out


def assert_every_frame_kept(view: ArchiveView, sim: Simulator) -> int:
    """Every frame each simulator socket wrote is in the archive, verbatim and in order, on
    the matching connection; the frames compared."""
    matched = match_connections(view, sim.connections)
    compared = 0
    for conn in sim.connections:
        if conn.id not in matched:
            assert not conn.sent, f"simulator socket {conn.id} sent frames nobody archived"
            continue
        sent = conn.texts()
        got = view.frames.get(matched[conn.id], [])
        assert got == sent, (
            f"socket {conn.id} -> {matched[conn.id]}: {len(sent)} frames sent, {len(got)} archived"
        )
        compared += len(sent)
    return compared


async def assert_replay_equal(live_dsn: str, replay_dsn: str, directory: Path) -> None:
    """Ingesting the archive into an empty database gives exactly the live rows."""
    paths = [f.path for f in closed_files(directory)]
    await ingest_archives(replay_dsn, paths[::-1])  # each file alone: any order will do
    live, replayed = dump(live_dsn), dump(replay_dsn)
    for table in TABLE_QUERIES:
        assert live[table] == replayed[table], (
            f"{table}: {len(live[table])} rows live, {len(replayed[table])} replayed"
        )
    again = await ingest_archives(replay_dsn, paths)  # the cursors: nothing twice
    assert sum(s.rows_written for s in again) == 0
    assert dump(replay_dsn) == replayed


def config(sim: Simulator, directory: Path, dsn: str, **kw: Any) -> RecorderConfig:
    """A recorder configuration for the simulator, quick to react."""
    base: dict[str, Any] = {
        "archive_dir": directory,
        "dsn": dsn,
        "gamma_url": sim.gamma_url,
        "clob_url": sim.clob_url,
        "ws_url": sim.ws_url,
        "shard_size": 8,
        "snapshot_every": 1.0,
        "price_every": 1.0,
        "silence_timeout": 30.0,
        "reseed_after": 0.5,
        "no_snapshot_after": 1.0,
        "discovery_every": 3600.0,
        "stagger": 0.01,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "commit_every": 0.2,
        "health_every": 0.5,
    }
    base.update(kw)
    return RecorderConfig(**base)


@contextlib.asynccontextmanager
async def recording(
    directory: Path, dsn: str, sim_config: SimulatorConfig | None = None, **kw: Any
) -> AsyncIterator[tuple[Simulator, Recorder]]:
    """A simulator and a recorder on it (ready: first subscriptions sent)."""
    sim = Simulator(sim_config or SimulatorConfig(markets=6, seed=11))
    async with sim, Recorder(config(sim, directory, dsn, **kw)) as rec:
        await rec.ready.wait()
        yield sim, rec


async def all_valid(rec: Recorder) -> None:
    """Wait until every subscribed token has a valid book."""
    await rec.until(lambda: rec.stats.tokens > 0 and rec.stats.valid_books == rec.stats.tokens)


async def archived_all_sent(rec: Recorder, sim: Simulator) -> None:
    """Wait until the recorder archived as many frames as the simulator wrote."""
    await sim.wait_for(lambda: True)  # let the simulator's writers run once
    total = sum(c.frames_sent for c in sim.connections)
    await rec.until(lambda: rec.stats.frames >= total)


class TcpProxy:
    """A TCP proxy to the database that the test can cut (connections dropped, new ones
    refused) and restore: the database going down and coming back."""

    def __init__(self, target_dsn: str) -> None:
        info = conninfo_to_dict(target_dsn)
        self.target_host = str(info.get("host") or "127.0.0.1")
        self.target_port = int(info.get("port") or 5432)
        self._info = info
        self.up = True
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def dsn(self) -> str:
        """The target's DSN through the proxy (its password read from its passfile)."""
        info = dict(self._info)
        passfile = info.pop("passfile", None)
        if passfile and "password" not in info:
            for line in Path(str(passfile)).read_text().splitlines():
                _host, port, _db, user, password = line.split(":", 4)
                if port in ("*", str(self.target_port)) and user in ("*", info.get("user")):
                    info["password"] = password
                    break
        info["host"], info["port"] = "127.0.0.1", str(self.port)
        return make_conninfo("", **info)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._links.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._links.discard(writer)
        self._links.discard(up_w)

    def cut(self) -> None:
        """The database is gone: open connections are dropped, new ones refused."""
        self.up = False
        for w in list(self._links):
            transport = w.transport
            transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class CliRecorder:
    """``pmstore record`` in a subprocess (``-v``: its debug log says each commit), its
    stderr read line by line; ``wait_line`` waits for a line containing a text."""

    def __init__(self, args: list[str], *, preexec: Any = None) -> None:
        self.args = args
        self.preexec = preexec
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import sys

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pmstore", "record", *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=self.preexec,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_line(self, text: str, count: int = 1) -> None:
        """Wait until ``count`` lines contain ``text``; AssertionError if the process ends
        first (with its output)."""
        assert self._reader is not None
        while self.count(text) < count:
            if self._reader.done():
                raise AssertionError(
                    f"pmstore record ended before {count} x {text!r}:\n" + "\n".join(self.lines)
                )
            self._changed.clear()
            await self._changed.wait()

    async def finish(self) -> int:
        """Wait for the process to exit; its exit code (output fully read)."""
        assert self.proc is not None and self._reader is not None
        code = await self.proc.wait()
        await self._reader
        return code

    def output(self) -> str:
        return "\n".join(self.lines)
