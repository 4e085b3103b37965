"""The live recorder: sockets and REST in, archive first, then the deriver, then the database.

Data flow (one asyncio event loop):

1. every frame, REST response and recorder event becomes a record that is
   appended to the open archive file (``archive``) and, straight from
   memory, fed to the deriver (``derive``); the deriver's rows collect in
   the current batch;
2. every ``commit_every`` seconds a ``tick`` record is written, the archive
   is flushed, and the batch (the records since the last cut) is offered
   to the database writer's queue (``sink``);
3. the database writer commits batches in order with the file's cursors.
   When the queue is full (the database is down or slow) the live batches
   are dropped instead, the writer has the file rotated, and writes what
   it missed from the closed files on disk (the same deriver), then takes
   the live batches again: exactly once, whatever happened.

At start the directory is locked, ``.part`` files left by a killed run are
closed (``archive.recover``), the state at the end of the last file is the
new run's starting state (so the time it was not running becomes
``not_running`` gaps), and every file not fully committed is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

import pmstore
from pmstore.errors import ConfigurationError, PayloadError, RecorderError, WriteError
from pmstore.recorder._metrics import RecorderMetrics
from pmstore.recorder._rest import DiscoveredMarket, Rest, RestError, market_facts
from pmstore.recorder._shard import ConnectGate, Shard, ShardOptions
from pmstore.recorder._sink import Batch, CommitInfo, FileRef, Sink, load_cursors, ns_to_datetime
from pmstore.recorder.archive import (
    ArchiveFile,
    ArchiveLock,
    ArchiveWriter,
    closed_files,
    partial_files,
    read_archive,
    recover,
)
from pmstore.recorder.derive import NS, TABLES, DeriveParams, Deriver, Rows
from pmstore.writer_async import AsyncWriter

__all__ = ["Recorder", "RecorderConfig", "RecorderStats"]

logger = logging.getLogger("pmstore.recorder")

GAMMA_URL: Final = "https://gamma-api.polymarket.com"
CLOB_URL: Final = "https://clob.polymarket.com"
WS_URL: Final = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
MAX_SHARD: Final = 500
"""Above this many assets a socket gets no snapshots (nautilus_trader PR #2915)."""

HEALTH_UPSERT_SQL: Final = """
    INSERT INTO pmstore_recorder_health (
        recorder_id, run_id, host, pid, archive_dir, state, started_at, updated_at, tokens,
        sockets, sockets_connected, last_frame_at, open_gaps, archived_records,
        committed_records, reconnects, detail)
    VALUES (%s, %s, %s, %s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (recorder_id) DO UPDATE SET
        run_id = EXCLUDED.run_id, host = EXCLUDED.host, pid = EXCLUDED.pid,
        archive_dir = EXCLUDED.archive_dir, state = EXCLUDED.state,
        started_at = EXCLUDED.started_at, updated_at = now(), tokens = EXCLUDED.tokens,
        sockets = EXCLUDED.sockets, sockets_connected = EXCLUDED.sockets_connected,
        last_frame_at = EXCLUDED.last_frame_at, open_gaps = EXCLUDED.open_gaps,
        archived_records = EXCLUDED.archived_records,
        committed_records = EXCLUDED.committed_records,
        reconnects = EXCLUDED.reconnects, detail = EXCLUDED.detail
"""


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """What ``pmstore record`` does (its options; seconds unless named otherwise).

    ``tokens`` fixes the token set (no discovery); else Gamma is polled every
    ``discovery_every`` seconds for open markets (``slugs``/``tag_id``
    filters, at most ``max_tokens`` tokens) and ``new_market`` events are
    followed. ``ConfigurationError`` from ``check()`` for values out of range.
    """

    archive_dir: Path
    dsn: str
    gamma_url: str = GAMMA_URL
    clob_url: str = CLOB_URL
    ws_url: str = WS_URL
    tokens: tuple[str, ...] = ()
    max_tokens: int | None = None
    slugs: tuple[str, ...] = ()
    tag_id: str | None = None
    shard_size: int = 200
    silence_timeout: float = 60.0
    snapshot_every: float = 60.0
    price_every: float = 60.0
    no_snapshot_after: float = 30.0
    reseed_after: float = 10.0
    discovery_every: float = 60.0
    drop_grace: float = 600.0
    ping_every: float = 10.0
    stagger: float = 0.1
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    commit_every: float = 1.0
    health_every: float = 5.0
    max_file_bytes: int = 256 << 20
    queue_batches: int = 300
    queue_rows: int = 1_000_000
    """Live batches (and rows in them; a book counts its levels) held for the database
    before the writer falls back to the archive."""
    stop_timeout: float = 10.0
    """Seconds a stop waits for the database to take the last batches."""
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    beyond_retention: str = "raise"

    def check(self) -> None:
        """Raise ConfigurationError for values out of range."""
        if not 1 <= self.shard_size <= MAX_SHARD:
            raise ConfigurationError(
                f"--shard-size {self.shard_size}: must be 1 to {MAX_SHARD} (above {MAX_SHARD} "
                "assets a socket gets no snapshots and then no data)"
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigurationError("--max-tokens must be at least 1")
        positive = {
            "silence_timeout": self.silence_timeout,
            "snapshot_every": self.snapshot_every,
            "price_every": self.price_every,
            "commit_every": self.commit_every,
            "ping_every": self.ping_every,
            "discovery_every": self.discovery_every,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, got {value}")
        for token in self.tokens:
            if not token.isdigit():
                raise ConfigurationError(f"--token {token!r}: a token id is decimal digits")

    @property
    def params(self) -> DeriveParams:
        return DeriveParams(self.snapshot_every, self.price_every, self.no_snapshot_after)


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A snapshot of the recorder's counters (also what the metrics report)."""

    run: str
    records: int
    frames: int
    bytes: int
    tokens: int
    sockets: int
    sockets_connected: int
    reconnects: int
    silences: int
    connect_failures: int
    open_gaps: int
    valid_books: int
    committed_records: int
    db_lag: int
    db_ok: bool
    db_failures: int
    batches_dropped: int
    files_closed: int
    reseed_books: int
    rest_failures: int
    health_updates: int
    archive_bytes: int
    """Compressed bytes written to the archive by this run (closed files and the open one)."""
    last_frame_age: dict[int, float] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)


class _LiveFeed:
    """The live batches on their way to the database writer, bounded.

    ``offer`` never blocks the recording: when the queue is full the feed
    detaches and drops batches until the writer re-attaches it at a file's
    start (the dropped ones are written from the archive).
    """

    def __init__(self, max_batches: int, max_units: int) -> None:
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        self.max_batches = max_batches
        self.max_units = max_units
        self.units = 0
        self.attached = True
        self.dropped = 0
        self.wakeup = asyncio.Event()

    @staticmethod
    def units_of(batch: Batch) -> int:
        rows = batch.rows
        levels = sum(len(b) for b in rows.book_bids) + sum(len(a) for a in rows.book_asks)
        return len(rows) + levels

    def offer(self, batch: Batch) -> None:
        if not self.attached:
            self.dropped += 1
            return
        units = self.units_of(batch)
        if self.queue.qsize() >= self.max_batches or self.units + units > self.max_units:
            self.attached = False
            self.dropped += 1
            self.wakeup.set()
            logger.warning(
                "database writer behind (%d batches queued): recording goes on, the "
                "database will catch up from the archive",
                self.queue.qsize(),
            )
            return
        self.units += units
        self.queue.put_nowait(batch)

    def taken(self, batch: Batch) -> None:
        self.units -= self.units_of(batch)

    def clear(self) -> None:
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None:
                self.taken(item)


class Recorder:
    """``pmstore record`` as an async context manager (see the module docstring).

    ``async with Recorder(config) as rec:`` starts it (raises
    ConfigurationError for a bad config or a locked directory, RecorderError
    when the archive cannot be written); ``await rec.ready.wait()`` waits
    until the first token set is known and every socket sent its initial
    frame; ``await rec.until(lambda: ...)`` waits for any condition on
    ``rec.stats`` (re-checked after every record, commit and socket state
    change); ``await rec.wait()`` runs until ``stop()`` (SIGTERM in the
    CLI) and raises the RecorderError that stopped it, if any. Leaving the
    context stops it cleanly: the last snapshots, the archive closed, the
    last batches committed (``stop_timeout``). ``on_commit`` is called with
    each committed batch (receipt-to-commit latency).
    """

    def __init__(
        self,
        config: RecorderConfig,
        *,
        on_commit: Callable[[CommitInfo], None] | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.directory = Path(config.archive_dir)
        self.run = secrets.token_hex(8)
        self.ready = asyncio.Event()
        self.metrics = RecorderMetrics(lambda: self.stats)
        self.metrics_port: int | None = None
        self._user_on_commit = on_commit
        self._lock = ArchiveLock(self.directory) if self.directory.is_dir() else None
        self._archive = ArchiveWriter(
            self.directory, self.run, config.params.to_json(), max_bytes=config.max_file_bytes
        )
        self._file: ArchiveFile | None = None
        self._ref: FileRef | None = None
        self._deriver = Deriver(config.params)
        self._rows = Rows()
        self._frame_times: list[int] = []
        self._batch_start = 0
        self._seq = 0
        self._last_t = 0
        self._feed = _LiveFeed(config.queue_batches, config.queue_rows)
        self._sink = Sink(
            config.dsn,
            on_commit=self._committed,
            beyond_retention=config.beyond_retention,  # type: ignore[arg-type]
        )
        self._health_writer = AsyncWriter(config.dsn, retries=0)
        self._session: aiohttp.ClientSession | None = None
        self._rest: Rest | None = None
        self._gate = ConnectGate(config.stagger)
        self._rng = random.Random()
        self._shards: list[Shard] = []
        self._where: dict[str, Shard] = {}
        self._markets: dict[str, tuple[str, ...]] = {}
        """Condition id -> its tokens, of the markets subscribed."""
        self._dropping: dict[str, float] = {}
        """Token -> monotonic time it is to be unsubscribed (a closed market, after the grace)."""
        self._reseeded: dict[str, float] = {}
        self._reseeding = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._db_task: asyncio.Task[None] | None = None
        self._pending: dict[str, int] = {}
        """Archive files not fully committed: file id -> records written."""
        self._files_closed = 0
        self._db_ok = True
        self._db_failures = 0
        self._reseed_books = 0
        self._health_updates = 0
        self._started_ns = 0
        self._started = False
        self._stopping = False
        self._stop_deadline = float("inf")
        self._stopped = asyncio.Event()
        self._failure: RecorderError | None = None
        self._watch: asyncio.Event | None = None

    # -- waiting ---------------------------------------------------------------

    def _bump(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true (checked after every record, commit and state
        change). Returns at once if it is; raises RecorderError if the recorder failed."""
        while not predicate():
            if self._failure is not None:
                raise self._failure
            if self._stopped.is_set():
                raise RecorderError("the recorder stopped", path=str(self.directory))
            if self._watch is None:
                self._watch = asyncio.Event()
            await self._watch.wait()

    @property
    def stats(self) -> RecorderStats:
        """The counters now."""
        now = time.monotonic()
        shards = self._shards
        rest = self._rest
        committed = sum(self._sink.committed(f) for f in self._pending)
        written = sum(self._pending.values())
        return RecorderStats(
            run=self.run,
            records=self._seq,
            frames=sum(s.frames for s in shards),
            bytes=sum(s.bytes for s in shards),
            tokens=len(self._where),
            sockets=len(shards),
            sockets_connected=sum(1 for s in shards if s.subscribed),
            reconnects=sum(s.reconnects for s in shards),
            silences=sum(s.silences for s in shards),
            connect_failures=sum(s.connect_failures for s in shards),
            open_gaps=self._deriver.open_gaps,
            valid_books=sum(1 for t in self._where if self._deriver.is_valid(t)),
            committed_records=self._sink.records_committed,
            db_lag=max(0, written - committed),
            db_ok=self._db_ok,
            db_failures=self._db_failures,
            batches_dropped=self._feed.dropped,
            files_closed=self._files_closed,
            reseed_books=self._reseed_books,
            rest_failures=rest.failures if rest is not None else 0,
            health_updates=self._health_updates,
            archive_bytes=self._archive.bytes_written
            + (self._file.compressed_bytes if self._file is not None else 0),
            last_frame_age={
                s.conn: now - (s.last_data_mono if s.last_data_mono is not None else now)
                for s in shards
            },
            rows_written=dict(self._sink.rows_written),
        )

    @property
    def deriver(self) -> Deriver:
        """The live deriver (read it, never feed it)."""
        return self._deriver

    @property
    def shards(self) -> Sequence[Shard]:
        return tuple(self._shards)

    # -- the record path -------------------------------------------------------

    def emit(self, record: dict[str, Any]) -> None:
        """Archive ``record`` (stamped with its receive time ``t`` and sequence ``q``), feed it
        to the deriver. After an archive failure nothing more is recorded."""
        if self._failure is not None or self._file is None:
            return
        # Strictly increasing: archive time never goes back (a clock step) and no two
        # records share an instant (a gap's key is its token and start).
        t = record["t"] = self._now()
        record["q"] = self._seq
        try:
            index = self._file.append(record)
        except OSError as exc:
            self._fail(exc)
            return
        self._seq += 1
        self._feed_deriver(record, index)
        if record["k"] == "frame":
            self._frame_times.append(t)
        if self._archive.due(t) and not self._stopping:
            self._rotate()
        self._bump()

    def _feed_deriver(self, record: dict[str, Any], index: int) -> None:
        self._deriver.feed(record, index, self._rows)
        if self._deriver.notices:
            notices, self._deriver.notices = self._deriver.notices, []
            for event in notices:
                self._notice(event)

    def _fail(self, exc: OSError) -> None:
        where = self._file.path if self._file is not None else self.directory
        self._failure = RecorderError(
            f"cannot write the archive {where}: {exc.strerror or exc} (errno {exc.errno}); "
            "recording stopped, the records before this one are kept",
            path=str(where),
        )
        logger.error("%s", self._failure)
        if self._file is not None:
            self._file.abandon()
        self._bump()
        if not self._stopping:
            asyncio.get_running_loop().create_task(self.stop())

    def _cut(self) -> None:
        """Flush the archive and hand the records since the last cut to the database writer."""
        f, ref = self._file, self._ref
        if f is None or ref is None or self._failure is not None:
            return
        try:
            f.flush()
        except OSError as exc:
            self._fail(exc)
            return
        end = f.records
        if end == self._batch_start:
            return
        batch = Batch(ref, self._batch_start, end, self._rows, self._frame_times)
        self._rows, self._frame_times, self._batch_start = Rows(), [], end
        self._pending[ref.file_id] = end
        self._feed.offer(batch)

    def _now(self) -> int:
        """The archive clock: strictly increasing nanoseconds."""
        self._last_t = max(time.time_ns(), self._last_t + 1)
        return self._last_t

    def _open_file(self) -> None:
        now = self._now()
        try:
            f = self._archive.open(now)
            self._file = f
            self._ref = FileRef(f.header.file_id, len(f.header.line()), str(f.path))
            self._batch_start = 0
            self._rows, self._frame_times = Rows(), []
            state = {"k": "state", "t": now, "q": self._seq, "s": self._deriver.checkpoint()}
            index = f.append(state)
        except OSError as exc:
            self._fail(exc)
            return
        self._seq += 1
        self._pending[f.header.file_id] = f.records
        self._feed_deriver(state, index)

    def _close_file(self) -> None:
        """Append the end state, cut, close (rename) the open file."""
        f = self._file
        if f is None or self._failure is not None:
            return
        now = self._now()
        state = {"k": "state", "t": now, "q": self._seq, "s": self._deriver.checkpoint()}
        try:
            index = f.append(state)
        except OSError as exc:
            self._fail(exc)
            return
        self._seq += 1
        self._feed_deriver(state, index)
        self._cut()
        if self._failure is not None:
            return
        try:
            path = self._archive.close()
        except OSError as exc:
            self._fail(exc)
            return
        self._file = None
        self._files_closed += 1
        logger.info("archive file closed: %s", path.name)

    def _rotate(self, *, reattach: bool = False) -> None:
        self._close_file()
        if self._failure is not None:
            return
        if reattach:
            self._feed.clear()
            self._feed.attached = True
        self._open_file()

    def _committed(self, info: CommitInfo) -> None:
        if info.frame_times:
            oldest = min(info.frame_times)
            self.metrics.commit_latency.observe(max(0.0, (info.committed_ns - oldest) / NS))
        if self._user_on_commit is not None:
            self._user_on_commit(info)
        logger.debug("committed %s records %d-%d", info.file_id, info.start, info.end)
        self._bump()

    # -- start -----------------------------------------------------------------

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Lock the directory, close what a killed run left, start recording."""
        if self._started:
            raise ConfigurationError("this Recorder was started already")
        self._started = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecorderError(f"cannot create {self.directory}: {exc}") from exc
        self._lock = ArchiveLock(self.directory)
        self._lock.acquire()
        try:
            state = await asyncio.to_thread(self._recover)
            self._deriver = Deriver(self.config.params, state)
            self._last_t = self._deriver.now  # the archive clock goes on from the last run
            self._open_file()
            if self._failure is not None:
                raise self._failure
            self._started_ns = time.time_ns()
            self.emit({"k": "start", "pid": os.getpid(), "version": pmstore.__version__,
                       "run": self.run, "config": self._config_summary()})  # fmt: skip
            self._cut()
            if self.config.metrics_port is not None:
                self.metrics_port = self.metrics.serve(
                    self.config.metrics_port, self.config.metrics_addr
                )
            # A handshake that hangs counts as a failed connect (REST calls set their own).
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=15.0, sock_connect=15.0)
            )
            self._rest = Rest(
                self._session,
                self.emit,
                gamma_url=self.config.gamma_url,
                clob_url=self.config.clob_url,
            )
            self._db_task = asyncio.create_task(self._db_loop(), name="pmstore-db")
            self._tasks.append(asyncio.create_task(self._tick_loop(), name="pmstore-tick"))
            self._tasks.append(asyncio.create_task(self._health_loop(), name="pmstore-health"))
            self._tasks.append(asyncio.create_task(self._markets_loop(), name="pmstore-markets"))
        except BaseException:
            await self._teardown()
            raise

    def _config_summary(self) -> dict[str, Any]:
        c = self.config
        return {
            "gamma_url": c.gamma_url, "clob_url": c.clob_url, "ws_url": c.ws_url,
            "tokens": len(c.tokens), "max_tokens": c.max_tokens, "slugs": list(c.slugs),
            "tag_id": c.tag_id, "shard_size": c.shard_size,
            "silence_timeout": c.silence_timeout, "reseed_after": c.reseed_after,
        }  # fmt: skip

    def _recover(self) -> dict[str, Any] | None:
        """Close ``.part`` files of a killed run; the state at the end of the last file."""
        for leftover in self.directory.glob("*.recovering"):
            leftover.unlink()
        for part in partial_files(self.directory):
            logger.warning("closing %s, left by a recorder that did not stop cleanly", part.name)
            recover(part, _replay)
        files = closed_files(self.directory)
        if not files:
            return None
        _, records = read_archive(files[-1].path)
        state: dict[str, Any] | None = None
        for record in records:
            if record.get("k") == "state":
                state = record["s"]
        return state

    # -- the loops -------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Every ``commit_every``: a tick record, the cut, drops and reseeds due."""
        every = self.config.commit_every
        next_at = time.monotonic()
        while not self._stopping:
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self._stopping:
                return
            self.emit({"k": "tick"})
            self._cut()
            await self._drop_due()
            self._maybe_reseed()

    def _maybe_reseed(self) -> None:
        if self._reseeding or self._rest is None:
            return
        now_ns = time.time_ns()
        older = now_ns - round(self.config.reseed_after * NS)
        mono = time.monotonic()
        due = [
            t
            for t in self._deriver.invalid_tokens(older)
            if t in self._where and mono - self._reseeded.get(t, -1e18) >= self.config.reseed_after
        ]
        if not due:
            return
        for t in due:
            self._reseeded[t] = mono
        self._reseeding = True
        task = asyncio.create_task(self._reseed(due), name="pmstore-reseed")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _reseed(self, tokens: list[str]) -> None:
        assert self._rest is not None
        try:
            self._reseed_books += await self._rest.books(tokens)
        except RestError as exc:
            logger.info("reseed of %d books failed: %s", len(tokens), exc)
        finally:
            self._reseeding = False

    async def _markets_loop(self) -> None:
        """The token set: fixed, or discovered every ``discovery_every``; closed markets
        found and dropped."""
        first = True
        while not self._stopping:
            try:
                await self._refresh_markets(first)
                first = False
            except RestError as exc:
                logger.warning("market discovery failed, retrying: %s", exc)
                if first:
                    await asyncio.sleep(min(self.config.discovery_every, 5.0))
                    continue
            await asyncio.sleep(self.config.discovery_every)

    async def _refresh_markets(self, first: bool) -> None:
        assert self._rest is not None
        c = self.config
        if c.tokens:
            if first:
                await self._set_tokens(list(c.tokens))
        else:
            found = await self._rest.discover(max_tokens=c.max_tokens, slugs=c.slugs,
                                              tag_id=c.tag_id)  # fmt: skip
            wanted: list[str] = []
            for m in found:
                self._markets.setdefault(m.condition_id, m.tokens)
                wanted.extend(m.tokens)
            if first:
                await self._set_tokens(wanted)
            else:
                await self._add_tokens(wanted)
        try:
            await self._poll_closed()
        except RestError as exc:
            logger.warning("closed-markets poll failed, retrying later: %s", exc)

    async def _poll_closed(self) -> None:
        """Ask Gamma which subscribed markets closed (a missed ``market_resolved``)."""
        assert self._rest is not None
        ids = {m for m in self._markets if any(t in self._where for t in self._markets[m])}
        for token in self._where:
            market = self._deriver.market_of(token)
            if market is not None:
                ids.add(market)
                self._markets.setdefault(market, ())
        if not ids:
            return
        for closed in await self._rest.closed(sorted(ids)):
            self._schedule_drop(closed)

    def _schedule_drop(self, market: DiscoveredMarket) -> None:
        tokens = market.tokens or self._markets.get(market.condition_id, ())
        if not tokens:
            tokens = tuple(
                t for t in self._where if self._deriver.market_of(t) == market.condition_id
            )
        at = time.monotonic() + self.config.drop_grace
        for t in tokens:
            if t in self._where and t not in self._dropping:
                self._dropping[t] = at

    async def _drop_due(self) -> None:
        if not self._dropping:
            return
        now = time.monotonic()
        due = [t for t, at in self._dropping.items() if at <= now]
        if not due:
            return
        for t in due:
            del self._dropping[t]
            self._reseeded.pop(t, None)
        gone = set(due)
        for market, market_tokens in list(self._markets.items()):
            if market_tokens and gone.issuperset(market_tokens):
                del self._markets[market]
        by_shard: dict[int, list[str]] = {}
        for t in due:
            shard = self._where.pop(t, None)
            if shard is not None:
                by_shard.setdefault(shard.conn, []).append(t)
        for conn, tokens in by_shard.items():
            await self._shards[conn].remove(tokens)
        logger.info("dropped %d tokens of closed markets", len(due))

    def _notice(self, event: dict[str, Any]) -> None:
        """A ``new_market`` (followed when discovering) or ``market_resolved`` (dropped)."""
        kind = event.get("event_type")
        if kind == "market_resolved":
            facts = market_facts(event)
            if facts is not None:
                self._schedule_drop(facts)
            return
        c = self.config
        if kind != "new_market" or c.tokens:
            return
        facts = market_facts(event)
        if facts is None or not facts.open or not facts.tokens:
            return
        if c.slugs and facts.slug not in c.slugs:
            return
        if facts.condition_id in self._markets:
            return
        self._markets[facts.condition_id] = facts.tokens
        task = asyncio.get_running_loop().create_task(self._add_tokens(list(facts.tokens)))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _set_tokens(self, tokens: list[str]) -> None:
        """The first token set: inherited tokens not in it are dropped (their gaps close)."""
        wanted = list(dict.fromkeys(tokens))
        if self.config.max_tokens is not None:
            wanted = wanted[: self.config.max_tokens]
        keep = set(wanted)
        gone = [t for t in self._deriver.tracked() if t not in keep and t not in self._where]
        if gone:
            self.emit({"k": "unsub", "c": -1, "e": 0, "a": gone})
        await self._add_tokens(wanted)
        await self.until(lambda: all(s.subscriptions for s in self._shards))
        self.ready.set()
        self._bump()

    async def _add_tokens(self, tokens: list[str]) -> None:
        """Subscribe new tokens: the last shard with room first, else a new shard."""
        assert self._session is not None
        new = [t for t in dict.fromkeys(tokens) if t not in self._where]
        cap = self.config.max_tokens
        if cap is not None:
            new = new[: max(0, cap - len(self._where))]
        size = self.config.shard_size
        options = ShardOptions(
            self.config.ws_url,
            ping_every=self.config.ping_every,
            silence_timeout=self.config.silence_timeout,
            backoff_base=self.config.backoff_base,
            backoff_cap=self.config.backoff_cap,
        )
        while new and not self._stopping:
            shard = self._shards[-1] if self._shards else None
            if shard is None or len(shard.tokens) >= size:
                shard = Shard(len(self._shards), self._session, self._gate, options, self.emit,
                              self._rng, self._bump)  # fmt: skip
                self._shards.append(shard)
                take, new = new[:size], new[size:]
                for t in take:
                    shard.tokens[t] = None
                    self._where[t] = shard
                shard.start()
                continue
            room = size - len(shard.tokens)
            take, new = new[:room], new[room:]
            for t in take:
                self._where[t] = shard
            await shard.add(take)

    async def _db_loop(self) -> None:
        """Commit the live batches; catch up from the archive first and after every detach."""
        feed, sink = self._feed, self._sink
        await self._catch_up()
        while True:
            if not feed.attached and not self._stopping and self._failure is None:
                feed.clear()
                self._rotate(reattach=True)
                await self._catch_up()
                continue
            get = asyncio.ensure_future(feed.queue.get())
            wake = asyncio.ensure_future(feed.wakeup.wait())
            await asyncio.wait((get, wake), return_when=asyncio.FIRST_COMPLETED)
            wake.cancel()
            feed.wakeup.clear()
            if not get.done():
                get.cancel()
                continue
            batch = get.result()
            if batch is None:
                return
            feed.taken(batch)
            if not feed.attached:
                continue
            await self._write(functools.partial(sink.write, batch))
            self._prune_pending()

    def _prune_pending(self) -> None:
        """Forget the closed files that are fully committed (for the lag figure)."""
        live = self._file.header.file_id if self._file is not None else None
        for file_id, written in list(self._pending.items()):
            if file_id != live and self._sink.committed(file_id) >= written:
                del self._pending[file_id]

    async def _write(self, step: Callable[[], Any]) -> None:
        """Run a database step until it succeeds (backing off while the database is down)."""
        delay = 0.5
        while True:
            try:
                await step()
            except WriteError as exc:
                self._db_failures += 1
                if self._db_ok:
                    logger.warning("database write failed, retrying (recording goes on): %s", exc)
                self._db_ok = False
                self._bump()
                if self._stopping and self._stop_deadline_passed():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except OSError as exc:  # the cursors' own connection (load_cursors)
                self._db_failures += 1
                self._db_ok = False
                logger.debug("database unreachable: %s", exc)
                if self._stopping and self._stop_deadline_passed():
                    raise WriteError(f"database unreachable: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if not self._db_ok:
                logger.warning("database writes succeed again")
            self._db_ok = True
            return

    def _stop_deadline_passed(self) -> bool:
        return time.monotonic() >= self._stop_deadline

    async def _catch_up(self) -> None:
        """Write every closed archive file not fully committed (oldest first)."""
        files = await asyncio.to_thread(closed_files, self.directory)
        ids = [f.file_id for f in files]
        found: dict[str, dict[str, int]] = {}

        async def read() -> None:
            found.update(await load_cursors(self.config.dsn, ids))

        await self._write(read)
        for f in files:
            done = min(found.get(f.file_id, {}).values(), default=0)
            if done >= f.records:
                self._pending.pop(f.file_id, None)
                continue
            self._pending[f.file_id] = f.records
            try:
                await self._write(functools.partial(self._sink.catch_up, f.path, f.file_id,
                                                    f.records))  # fmt: skip
            except PayloadError as exc:
                logger.error("archive file %s cannot be derived, left out: %s", f.path, exc)
            self._pending.pop(f.file_id, None)
            self._bump()

    async def _health_loop(self) -> None:
        while not self._stopping:
            await self._health("running")
            await asyncio.sleep(self.config.health_every)

    async def _health(self, state: str) -> None:
        s = self.stats
        last = max((sh.last_data_ns for sh in self._shards), default=0)
        params = (
            f"{socket.gethostname()}:{self.directory.resolve()}",
            self.run,
            socket.gethostname(),
            os.getpid(),
            str(self.directory.resolve()),
            state,
            _dt(self._started_ns),
            s.tokens,
            s.sockets,
            s.sockets_connected,
            _dt(last) if last else None,
            s.open_gaps,
            s.records,
            s.committed_records,
            s.reconnects,
            orjson.dumps({"db_lag": s.db_lag, "silences": s.silences,
                          "connect_failures": s.connect_failures, "error": str(self._failure or "")
                          }).decode(),
        )  # fmt: skip
        try:
            await self._health_writer.execute_statements([(HEALTH_UPSERT_SQL, params)])
        except WriteError as exc:
            logger.debug("health row not written: %s", exc)
            return
        self._health_updates += 1
        self._bump()

    # -- stop ------------------------------------------------------------------

    async def wait(self) -> None:
        """Run until stopped; raise the RecorderError that stopped it, if any."""
        await self._stopped.wait()
        if self._failure is not None:
            raise self._failure

    async def stop(self) -> None:
        """Stop cleanly: stop reading, final snapshots and gaps, close the archive, commit
        what is left (waiting at most ``stop_timeout`` for the database). Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._stop_deadline = time.monotonic() + self.config.stop_timeout
        try:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.clear()
            if self._file is not None and self._failure is None:
                self.emit({"k": "stop", "why": "stop"})
            for shard in self._shards:
                shard.cancel()  # all at once: no frame is read after the stop record
            for shard in self._shards:
                await shard.stop()
            await asyncio.gather(*(s.close_socket() for s in self._shards))
            self._close_file()
            await self._finish_db()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._health("failed" if self._failure else "stopped"), timeout=2.0
                )
        finally:
            await self._teardown()
            self._stopped.set()
            self._bump()

    async def _finish_db(self) -> None:
        task = self._db_task
        if task is None:
            return
        self._feed.queue.put_nowait(None)
        remaining = max(0.1, self._stop_deadline - time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=remaining)
        except (TimeoutError, WriteError) as exc:
            logger.warning(
                "stopped before the database took every batch (%s); the next run or "
                "`pmstore ingest` of the archive writes the rest",
                exc or "timeout",
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._db_task is not None and not self._db_task.done():
            self._db_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._db_task
        if self._file is not None:
            self._file.abandon()
            self._file = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._sink.aclose()
        await self._health_writer.aclose()
        self.metrics.close()
        if self._lock is not None:
            self._lock.release()


def _dt(ns: int) -> datetime | None:
    return ns_to_datetime(ns) if ns else None


def _replay(header: Any, records: Any) -> dict[str, Any]:
    """Derive a recovered file to its end; its end state as a ``state`` record."""
    deriver = Deriver(DeriveParams.from_json(header.params))
    rows = Rows(keep_from=dict.fromkeys(TABLES, 1 << 62))  # rows are not needed
    last_t = 0
    for index, record in enumerate(records, start=1):
        deriver.feed(record, index, rows)
        last_t = max(last_t, int(record.get("t", 0)))
    return {"k": "state", "t": last_t, "s": deriver.checkpoint()}
