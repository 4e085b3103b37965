"""``pmstore record`` against the simulator's real sockets and a real TimescaleDB.

Each test drives the simulator (steps, faults) and waits on the recorder's
and the simulator's conditions (``Recorder.until``, ``Simulator.wait_for``),
never on time. Every test ends with the same checks: every frame the
simulator wrote is in the archive verbatim, and ingesting the archive into
an empty database gives exactly the rows the recorder wrote live.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest
from conftest import TestServer
from recorder_support import (
    TcpProxy,
    all_valid,
    assert_every_frame_kept,
    assert_replay_equal,
    dump,
    gaps,
    read_dir,
    recording,
)
from recorder_support import config as recorder_config

from pmstore.recorder import Recorder
from pmstore.simulator import Simulator, SimulatorConfig

_names = itertools.count()


@pytest.fixture
def dbs(server: TestServer) -> Iterator[tuple[str, str]]:
    """Two fresh migrated databases: the live one and the one the archive is replayed into."""
    n = next(_names)
    names = (f"t_rec_live_{n}", f"t_rec_replay_{n}")
    yield server.migrated_database(names[0]), server.migrated_database(names[1])
    for name in names:
        server.drop_database(name)


def now() -> datetime:
    return datetime.now(UTC)


async def settle(sim: Simulator, rec: Recorder) -> None:
    """Wait until the recorder has archived every frame the simulator wrote so far."""
    total = sum(c.frames_sent for c in sim.connections)
    await rec.until(lambda: rec.stats.frames >= total)


async def boundaries(rec: Recorder) -> None:
    """Wait until the next price and book snapshot boundaries have passed (archive time)."""
    d = rec.deriver
    price, book = d.next_price, d.next_snapshot
    await rec.until(lambda: d.next_price > price and d.next_snapshot > book)


async def committed(rec: Recorder) -> None:
    """Wait until every record archived so far is committed."""
    target = rec.stats.records
    await rec.until(lambda: rec.stats.committed_records >= target and rec.stats.db_lag == 0)


# -- the whole path and the protocol ------------------------------------------------


@pytest.mark.asyncio
async def test_records_every_frame_and_replays_to_the_same_rows(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    # Small files: the archive rotates by size several times, each file derived alone.
    async with recording(tmp_path, live, max_file_bytes=16 << 10) as (sim, rec):
        await all_valid(rec)
        for _ in range(5):
            await sim.step(100)
        await settle(sim, rec)
        await boundaries(rec)
        await committed(rec)
        stats = rec.stats
        assert stats.sockets == 2 and stats.tokens == 12
    assert len(list(tmp_path.glob("pmrec-*.jsonl.gz"))) >= 3
    view = read_dir(tmp_path)
    assert assert_every_frame_kept(view, sim) > 500
    rows = dump(live)
    for table in ("price_snapshots", "orderbook_snapshots", "trades", "markets"):
        assert rows[table], f"no {table} written"
    # The clean stop: every token's gap is open with reason 'shutdown'.
    open_at_stop = [g for g in gaps(live) if g[2] is None]
    assert {g[3] for g in open_at_stop} == {"shutdown"}
    assert len(open_at_stop) == 12
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_protocol_one_initial_frame_then_operations_no_early_ping(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, _ = dbs
    sim_config = SimulatorConfig(markets=3, seed=5)
    async with recording(tmp_path, live, sim_config, shard_size=10, ping_every=0.05) as (
        sim,
        rec,
    ):
        await all_valid(rec)
        [conn] = sim.open_connections
        # A new market is announced: its tokens are added with an operation frame.
        market = await sim.list_market()
        await rec.until(lambda: all(rec.deriver.is_valid(t) for t in market.token_ids))
        await sim.wait_for(lambda: conn.pings >= 2, what="two PINGs")
    received = [f.text for f in conn.received]
    first = orjson.loads(received[0] or "")
    assert first == {
        "assets_ids": first["assets_ids"],
        "type": "market",
        "initial_dump": True,
        "custom_feature_enabled": True,
    }
    later = [t for t in received[1:] if t is not None]
    frames = [orjson.loads(t) for t in later if t != "PING"]
    assert all("type" not in f for f in frames), "a second initial frame was sent"
    assert any(
        f.get("operation") == "subscribe" and set(f["assets_ids"]) == set(market.token_ids)
        for f in frames
    )
    kinds = {fact.kind for fact in sim.facts}
    assert "invalid_operation" not in kinds and "invalid_subscription" not in kinds
    assert received.index("PING") > 0  # the first PING came after the initial frame
    assert_every_frame_kept(read_dir(tmp_path), sim)


@pytest.mark.asyncio
async def test_backoff_resets_only_after_a_data_frame(dbs: tuple[str, str], tmp_path: Path) -> None:
    """Sockets that connect but get no data keep backing off longer; data resets it."""
    live, _ = dbs
    sim_config = SimulatorConfig(markets=2, seed=3)
    sim_config.faults.max_assets_per_socket = 0  # every socket: no snapshot, no data
    async with recording(
        tmp_path, live, sim_config, shard_size=4, silence_timeout=0.3, backoff_base=0.001
    ) as (sim, rec):
        [shard] = rec.shards
        await rec.until(lambda: shard.epoch >= 4)
        assert shard.attempt >= 3  # connected four times, never reset
        sim.faults.max_assets_per_socket = None
        sim.start_rate(100.0)  # data from now on: no more silences
        await all_valid(rec)
        assert shard.attempt == 0
        await sim.stop_rate()
    assert_every_frame_kept(read_dir(tmp_path), sim)


def test_shard_size_above_500_is_refused(tmp_path: Path) -> None:
    from pmstore.errors import ConfigurationError
    from pmstore.recorder import RecorderConfig

    with pytest.raises(ConfigurationError, match="must be 1 to 500"):
        RecorderConfig(archive_dir=tmp_path, dsn="", shard_size=501).check()


# -- faults ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_silent_freeze_rebuilds_the_socket_and_records_the_gap(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live, silence_timeout=1.0) as (sim, rec):
        await all_valid(rec)
        conns = await sim.wait_connections(2)
        frozen = conns[0]
        frozen_tokens = set(frozen.asset_ids)
        sim.start_rate(200.0)  # the healthy socket is never silent for a second
        await rec.until(lambda: rec.stats.frames > 100)
        before = now()
        frozen.freeze()  # its data is lost from now on, PONG still answered
        await rec.until(lambda: rec.stats.silences >= 1)
        await all_valid(rec)  # rebuilt, fresh books
        after = now()
        await rec.until(lambda: rec.stats.frames > 400)
        await sim.stop_rate()
        await settle(sim, rec)
    assert frozen.suppressed > 0
    assert rec.stats.silences == 1
    assert_every_frame_kept(read_dir(tmp_path), sim)
    silence = [g for g in gaps(live) if g[3] == "silence"]
    assert {g[0] for g in silence} == frozen_tokens
    for _token, started, ended, _ in silence:
        assert started <= before, "the gap starts at the last data frame before the freeze"
        assert ended is not None and ended <= after
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_abrupt_drop_reconnects_and_records_the_gap(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live) as (sim, rec):
        await all_valid(rec)
        conns = await sim.wait_connections(2)
        await sim.step(40)
        await settle(sim, rec)
        victim = conns[1]
        tokens = set(victim.asset_ids)
        await victim.drop()
        await rec.until(lambda: rec.stats.reconnects >= 1)
        await all_valid(rec)
        await sim.step(40)
        await settle(sim, rec)
    assert_every_frame_kept(read_dir(tmp_path), sim)
    lost = [g for g in gaps(live) if g[3] == "disconnect"]
    assert {g[0] for g in lost} == tokens
    assert all(g[2] is not None for g in lost)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_handshake_429_is_retried(dbs: tuple[str, str], tmp_path: Path) -> None:
    live, replay = dbs
    sim_config = SimulatorConfig(markets=6, seed=2)
    sim_config.faults.reject_handshakes = 3
    async with recording(tmp_path, live, sim_config) as (sim, rec):
        await all_valid(rec)
        assert rec.stats.connect_failures == 3
        await sim.step(30)
        await settle(sim, rec)
    assert sum(f.kind == "handshake_rejected" for f in sim.facts) == 3
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_no_snapshot_above_n_assets_is_a_gap(dbs: tuple[str, str], tmp_path: Path) -> None:
    """A socket over the server's asset limit gets nothing: its tokens get no_snapshot gaps
    (and reseeds from POST /books do not make them continuous: the socket is silent)."""
    live, replay = dbs
    sim_config = SimulatorConfig(markets=6, seed=4)
    sim_config.faults.max_assets_per_socket = 8
    async with recording(tmp_path, live, sim_config, shard_size=10) as (sim, rec):
        # shard 0 has 10 assets (over the limit), shard 1 has 2.
        small = rec.shards[1]
        await rec.until(lambda: all(rec.deriver.is_valid(t) for t in small.tokens))
        big = list(rec.shards[0].tokens)
        await rec.until(lambda: len({g for g in big if _has_gap(rec, g)}) == len(big))
        await sim.step(20)
        await settle(sim, rec)
    no_snap = {g[0] for g in gaps(live) if g[3] == "no_snapshot"}
    assert no_snap == set(big)
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


def _has_gap(rec: Recorder, token: str) -> bool:
    state = rec.deriver.tokens.get(token)
    return state is not None and state.gap is not None


@pytest.mark.asyncio
async def test_missed_market_resolved_is_found_by_the_gamma_poll(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    sim_config = SimulatorConfig(markets=4, seed=8)
    sim_config.faults.drop_market_resolved = True
    async with recording(tmp_path, live, sim_config, discovery_every=0.2, drop_grace=0.0) as (
        sim,
        rec,
    ):
        await all_valid(rec)
        target = sim.markets()[0]
        await sim.resolve_market(target.condition_id, winner=1)
        # Found by polling Gamma (closed=true, condition_ids=...), then dropped.
        await rec.until(lambda: not any(t in rec.deriver.tokens for t in target.token_ids))
    with psycopg.connect(live) as conn:
        row = conn.execute(
            "SELECT winner_token_id, status, detection_method FROM resolutions "
            "WHERE condition_id = %s",
            (target.condition_id,),
        ).fetchone()
    assert row == (target.token_ids[1], "resolved", "gamma_outcome_prices")
    assert not any('"market_resolved"' in t for c in sim.connections for t in c.texts()), (
        "the fault dropped market_resolved"
    )
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_market_resolved_event_is_stored_and_the_market_dropped(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live, drop_grace=0.0) as (sim, rec):
        await all_valid(rec)
        # The first closed-markets poll is done (the next is an hour away): the socket's
        # market_resolved is the only news of the resolution.
        await sim.wait_for(lambda: any("closed=true" in r.query for r in sim.requests))
        target = sim.markets()[1]
        await sim.resolve_market(target.condition_id, winner=0)
        await rec.until(lambda: not any(t in rec.deriver.tokens for t in target.token_ids))
    with psycopg.connect(live) as conn:
        row = conn.execute(
            "SELECT winner_token_id, detection_method FROM resolutions WHERE condition_id = %s",
            (target.condition_id,),
        ).fetchone()
    assert row == (target.token_ids[0], "ws_market_resolved")
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_duplicate_frames_are_kept_and_write_no_duplicate_rows(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    sim_config = SimulatorConfig(markets=6, seed=9)
    sim_config.faults.duplicate_rate = 0.5
    async with recording(tmp_path, live, sim_config) as (sim, rec):
        await all_valid(rec)
        for _ in range(4):
            await sim.step(60)
        await settle(sim, rec)
        await committed(rec)
    dups = sum(f.duplicate for c in sim.connections for f in c.sent)
    assert dups > 10
    assert_every_frame_kept(read_dir(tmp_path), sim)
    with psycopg.connect(live) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (trade_id, ts)) FROM trades").fetchone()
    assert row is not None and row[0] == row[1] > 0
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_empty_books_are_valid_books(dbs: tuple[str, str], tmp_path: Path) -> None:
    live, replay = dbs
    async with recording(tmp_path, live) as (sim, rec):
        await all_valid(rec)
        target = sim.markets()[2]
        await sim.clear_book(target.condition_id)
        await settle(sim, rec)
        boundary = rec.deriver.next_snapshot  # the next book snapshot is of the empty books
        await rec.until(lambda: rec.deriver.next_snapshot > boundary)
        await committed(rec)
        assert all(rec.deriver.is_valid(t) for t in target.token_ids)
    with psycopg.connect(live) as conn:
        empty = conn.execute(
            "SELECT count(*) FROM orderbook_snapshots WHERE token_id = ANY(%s) "
            "AND bids = '[]' AND asks = '[]'",
            (list(target.token_ids),),
        ).fetchone()
    assert empty is not None and empty[0] > 0
    assert not [g for g in gaps(live) if g[0] in target.token_ids and g[3] != "shutdown"]
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_tick_size_change_invalidates_the_book_until_a_reseed(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live) as (sim, rec):
        await all_valid(rec)
        target = sim.markets()[0]
        await sim.change_tick_size(target.condition_id, "0.001")
        await settle(sim, rec)
        await rec.until(lambda: rec.stats.reseed_books >= 2)
        await rec.until(lambda: all(rec.deriver.is_valid(t) for t in target.token_ids))
        await sim.step(20)
        await settle(sim, rec)
    tick = [g for g in gaps(live) if g[3] == "tick_size_change" and g[0] in target.token_ids]
    assert {g[0] for g in tick} == set(target.token_ids)  # (random steps change ticks too)
    assert all(g[2] is not None for g in tick)
    assert any(r.path.endswith("/books") and r.method == "POST" for r in sim.requests)
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_book_mismatch_invalidates_and_a_fresh_book_closes_the_gap(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live, reseed_after=3600.0) as (sim, rec):
        await all_valid(rec)
        target = sim.markets()[3]
        token = target.token_ids[0]
        # A delta whose best bid/ask disagree with the book kept.
        bogus = {
            "event_type": "price_change",
            "market": target.condition_id,
            "timestamp": str(int(time.time() * 1000)),
            "price_changes": [
                {"asset_id": token, "price": "0.5", "size": "1", "side": "BUY",
                 "hash": "x", "best_bid": "0.99", "best_ask": "0.999"}
            ],
        }  # fmt: skip
        await sim.emit(orjson.dumps(bogus).decode())
        await rec.until(lambda: not rec.deriver.is_valid(token))
        await sim.send_books([token])
        await rec.until(lambda: rec.deriver.is_valid(token))
    mismatch = [g for g in gaps(live) if g[3] == "book_mismatch"]
    assert [g[0] for g in mismatch] == [token]
    assert mismatch[0][2] is not None
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_database_down_recording_goes_on_and_catches_up_exactly_once(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    proxy = TcpProxy(live)
    await proxy.start()
    try:
        async with recording(tmp_path, proxy.dsn(), queue_batches=5) as (sim, rec):
            await all_valid(rec)
            await sim.step(50)
            await settle(sim, rec)
            await committed(rec)
            proxy.cut()
            await sim.step(100)
            await settle(sim, rec)
            await rec.until(lambda: not rec.stats.db_ok)
            await rec.until(lambda: rec.stats.batches_dropped > 0)  # the queue overflowed
            frames_down = rec.stats.frames
            proxy.restore()
            await rec.until(lambda: rec.stats.db_ok)
            await committed(rec)
            assert rec.stats.frames >= frames_down
            await sim.step(30)
            await settle(sim, rec)
    finally:
        await proxy.close()
    view = read_dir(tmp_path)
    assert len(list(tmp_path.glob("pmrec-*.jsonl.gz"))) >= 2  # rotated for the catch-up
    assert_every_frame_kept(view, sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_metrics_endpoint_and_the_health_and_gap_queries(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    import aiohttp

    from pmstore.recorder.health import feed_gaps, open_gaps, recorder_health

    live, _ = dbs
    started = now()
    async with recording(tmp_path, live, metrics_port=0, metrics_addr="127.0.0.1") as (sim, rec):
        await all_valid(rec)
        await sim.step(30)
        await settle(sim, rec)
        assert rec.metrics_port
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{rec.metrics_port}/metrics"
            async with session.get(url) as resp:
                text = await resp.text()
        updates = rec.stats.health_updates  # one may be under way with older figures:
        await rec.until(lambda: rec.stats.health_updates > updates + 1)  # the next one
        with psycopg.connect(live) as conn:
            [running] = recorder_health(conn)
        assert running.state == "running" and running.sockets == 2
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["pmstore_recorder_sockets_connected"] == 2.0
    assert values["pmstore_recorder_tokens"] == 12.0
    assert values["pmstore_recorder_frames_total"] >= 30
    assert 'pmstore_recorder_last_frame_age_seconds{socket="0"}' in values
    for name in ("open_gaps", "db_lag_records", "reconnects_total"):
        assert f"pmstore_recorder_{name}" in values
    assert "pmstore_recorder_commit_latency_seconds_count" in values
    with psycopg.connect(live) as conn:
        [stopped] = recorder_health(conn)
        assert stopped.state == "stopped" and stopped.run_id == rec.run
        assert stopped.tokens == 12
        shutdown = open_gaps(conn)
        assert len(shutdown) == 12 and {g.reason for g in shutdown} == {"shutdown"}
        token = shutdown[0].token_id
        assert feed_gaps(conn, datetime(2000, 1, 1, tzinfo=UTC), now(), [token]) == [
            g for g in shutdown if g.token_id == token
        ]
        assert feed_gaps(conn, datetime(2000, 1, 1, tzinfo=UTC), started, None) == []


@pytest.mark.asyncio
async def test_fixed_tokens_without_discovery(dbs: tuple[str, str], tmp_path: Path) -> None:
    live, replay = dbs
    async with Simulator(SimulatorConfig(markets=6, seed=13)) as sim:
        chosen = sim.markets()[1].token_ids + sim.markets()[4].token_ids
        config = recorder_config(sim, tmp_path, live, tokens=chosen)
        async with Recorder(config) as rec:
            await rec.ready.wait()
            await all_valid(rec)
            await sim.step(40, only_subscribed=False)
            await settle(sim, rec)
            assert set(rec.deriver.tracked()) == set(chosen)
    assert not any(r.path.endswith("/markets/keyset") and "closed=false" in r.query
                   for r in sim.requests)  # fmt: skip
    assert {c.asset_ids for c in sim.connections} == {chosen}
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)


@pytest.mark.asyncio
async def test_maintenance_silence_rebuilds_every_socket_and_every_token_has_its_gap(
    dbs: tuple[str, str], tmp_path: Path
) -> None:
    live, replay = dbs
    async with recording(tmp_path, live, silence_timeout=0.5) as (sim, rec):
        await all_valid(rec)
        tokens = set(rec.deriver.tracked())
        sim.faults.maintenance = True  # no events; sockets open, PING answered
        await rec.until(lambda: rec.stats.silences >= 2)
        sim.faults.maintenance = False
        sim.start_rate(200.0)
        await rec.until(lambda: rec.stats.sockets_connected == 2)
        await all_valid(rec)
        await sim.stop_rate()
        await settle(sim, rec)
    silence = [g for g in gaps(live) if g[3] == "silence"]
    assert {g[0] for g in silence} == tokens
    assert_every_frame_kept(read_dir(tmp_path), sim)
    await assert_replay_equal(live, replay, tmp_path)
