"""The recorder's deriver and archive format, record by record (no sockets, no database).

Records are built as the live recorder writes them; book payloads use
Polymarket's shapes (worst-first levels, decimal strings, millisecond
timestamps) with 77-digit token ids.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from pmstore.errors import PayloadError
from pmstore.recorder import DeriveParams, Deriver, Rows, is_archive, read_archive
from pmstore.recorder.archive import ArchiveWriter, closed_files, partial_files, recover

S = 1_000_000_000
T0 = 1_800_000_000 * S  # a whole minute
A = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
B = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
M = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"
P = DeriveParams(snapshot_every=10.0, price_every=10.0, no_snapshot_after=5.0)


def book(token: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ms: int) -> Any:
    return {
        "event_type": "book", "asset_id": token, "market": M, "timestamp": str(ms),
        "hash": "0x0", "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
    }  # fmt: skip


def change(token: str, price: str, size: str, side: str, bid: str, ask: str, ms: int) -> Any:
    return {
        "event_type": "price_change", "market": M, "timestamp": str(ms),
        "price_changes": [{"asset_id": token, "price": price, "size": size, "side": side,
                           "hash": "h", "best_bid": bid, "best_ask": ask}],
    }  # fmt: skip


def frame(t: int, payload: Any, c: int = 0, e: int = 1) -> dict[str, Any]:
    return {"k": "frame", "t": t, "c": c, "e": e, "d": orjson.dumps(payload).decode()}


class Run:
    """A deriver fed records in order, numbering them as a file does."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.deriver = Deriver(P, state)
        self.rows = Rows()
        self.index = 1

    def feed(self, *records: dict[str, Any]) -> None:
        for record in records:
            self.deriver.feed(record, self.index, self.rows)
            self.index += 1

    def gaps(self) -> list[tuple[str, int, int | None, str]]:
        return self.rows.gaps


def started(run: Run, *tokens: str) -> None:
    run.feed(
        {"k": "start", "t": T0},
        {"k": "open", "t": T0 + 1, "c": 0, "e": 1},
        {"k": "sub", "t": T0 + 2, "c": 0, "e": 1, "a": list(tokens)},
    )


BIDS = [("0.40", "100"), ("0.45", "20")]  # worst-first, as Polymarket sends them
ASKS = [("0.55", "30"), ("0.50", "10")]


def test_book_and_deltas_give_midpoint_prices_and_best_first_snapshots() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + 3, [book(A, BIDS, ASKS, 1)]))
    run.feed(frame(T0 + 4, change(A, "0.46", "5", "BUY", "0.46", "0.5", 2)))
    run.feed(frame(T0 + 5, change(A, "0.50", "0", "SELL", "0.46", "0.55", 3)))
    run.feed({"k": "tick", "t": T0 + 10 * S})  # the boundary: one price, one book
    rows = run.rows
    assert rows.price_ts == [T0 + 10 * S] and rows.price_token == [A]
    assert rows.price_value == [pytest.approx((0.46 + 0.55) / 2)]
    assert rows.book_bids == [[(0.46, 5.0), (0.45, 20.0), (0.4, 100.0)]]
    assert rows.book_asks == [[(0.55, 30.0)]]
    assert run.gaps() == []
    assert run.deriver.is_valid(A)


def test_a_delta_that_disagrees_opens_a_gap_and_a_fresh_book_closes_it() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + 3, book(A, BIDS, ASKS, 1)))
    run.feed(frame(T0 + 4 * S, change(A, "0.46", "5", "BUY", "0.47", "0.5", 2)))
    assert not run.deriver.is_valid(A)
    run.feed(frame(T0 + 5 * S, change(A, "0.44", "5", "BUY", "0.44", "0.5", 3)))  # ignored
    run.feed({"k": "tick", "t": T0 + 10 * S})  # no price or book while invalid
    assert run.rows.price_ts == [] and run.rows.book_ts == []
    run.feed(frame(T0 + 11 * S, book(A, BIDS, ASKS, 4)))
    assert run.gaps() == [
        (A, T0 + 4 * S, None, "book_mismatch"),
        (A, T0 + 4 * S, T0 + 11 * S, "book_mismatch"),
    ]


def test_the_legacy_shape_is_applied_and_an_unknown_shape_invalidates() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + 3, book(A, BIDS, ASKS, 1)))
    legacy = {"event_type": "price_change", "asset_id": A, "market": M, "timestamp": "2",
              "hash": "h", "changes": [{"price": "0.47", "side": "BUY", "size": "3"}]}  # fmt: skip
    run.feed(frame(T0 + S, legacy))
    assert run.deriver.is_valid(A)
    run.feed(frame(T0 + 2 * S, change(A, "0.47", "3", "BUY", "0.47", "0.5", 3)))  # agrees
    assert run.deriver.is_valid(A) and run.gaps() == []
    unknown = {"event_type": "price_change", "asset_id": A, "market": M, "deltas": []}
    run.feed(frame(T0 + 3 * S, unknown))
    assert run.gaps() == [(A, T0 + 3 * S, None, "book_mismatch")]


def test_tick_size_change_invalidates_unless_it_changes_nothing() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + 3, book(A, BIDS, ASKS, 1)))
    same = {"event_type": "tick_size_change", "asset_id": A, "market": M,
            "old_tick_size": "0.01", "new_tick_size": "0.010", "timestamp": "2"}  # fmt: skip
    run.feed(frame(T0 + S, same))
    assert run.deriver.is_valid(A)
    run.feed(frame(T0 + 2 * S, {**same, "new_tick_size": "0.001"}))
    assert run.gaps() == [(A, T0 + 2 * S, None, "tick_size_change")]


def test_a_reseed_needs_an_open_live_socket_and_must_not_be_stale() -> None:
    run = Run()
    started(run, A, B)
    run.feed(frame(T0 + 3, [book(A, BIDS, ASKS, 1000), book(B, BIDS, ASKS, 1000)]))
    run.feed(frame(T0 + S, change(A, "0.46", "5", "BUY", "0.9", "0.95", 2000)))  # A invalid
    stale = [book(A, BIDS, ASKS, 1500)]  # older than the last event of A
    run.feed({"k": "rest", "t": T0 + 2 * S, "what": "books", "d": orjson.dumps(stale).decode()})
    assert not run.deriver.is_valid(A)
    fresh = [book(A, BIDS, ASKS, 2500)]
    run.feed({"k": "rest", "t": T0 + 3 * S, "what": "books", "d": orjson.dumps(fresh).decode()})
    assert run.deriver.is_valid(A)
    assert run.gaps()[-1] == (A, T0 + S, T0 + 3 * S, "book_mismatch")
    # A socket that sent nothing since the subscription gets no reseed.
    run.feed({"k": "close", "t": T0 + 4 * S, "c": 0, "e": 1, "why": "x"})
    run.feed({"k": "open", "t": T0 + 5 * S, "c": 0, "e": 2},
             {"k": "sub", "t": T0 + 5 * S, "c": 0, "e": 2, "a": [A, B]})  # fmt: skip
    assert run.deriver.invalid_tokens(T0 + 9 * S) == []
    again = [book(A, BIDS, ASKS, 9000)]
    run.feed({"k": "rest", "t": T0 + 6 * S, "what": "books", "d": orjson.dumps(again).decode()})
    assert not run.deriver.is_valid(A)


def test_a_lost_socket_opens_gaps_from_its_last_data_frame() -> None:
    run = Run()
    started(run, A, B)
    run.feed(frame(T0 + S, [book(A, BIDS, ASKS, 1), book(B, BIDS, ASKS, 1)]))
    run.feed(frame(T0 + 2 * S, change(A, "0.46", "5", "BUY", "0.46", "0.5", 2)))
    run.feed({"k": "tick", "t": T0 + 3 * S}, {"k": "tick", "t": T0 + 4 * S})
    run.feed({"k": "silence", "t": T0 + 5 * S, "c": 0, "e": 1, "last": T0 + 2 * S})
    run.feed({"k": "close", "t": T0 + 5 * S, "c": 0, "e": 1, "why": "silence"})
    # Both from the socket's last data frame (A's delta): the stream was alive until then.
    expected = [(A, T0 + 2 * S, None, "silence"), (B, T0 + 2 * S, None, "silence")]
    assert sorted(run.gaps()) == sorted(expected)


def test_a_token_without_a_book_gets_a_no_snapshot_gap_from_its_subscription() -> None:
    run = Run()
    started(run, A, B)
    run.feed(frame(T0 + S, book(A, BIDS, ASKS, 1)))
    run.feed({"k": "tick", "t": T0 + 4 * S})
    assert run.gaps() == []
    run.feed({"k": "tick", "t": T0 + 6 * S})
    assert run.gaps() == [(B, T0 + 2, None, "no_snapshot")]
    run.feed(frame(T0 + 7 * S, book(B, [], [], 2)))  # an empty book is a book
    assert run.gaps()[-1] == (B, T0 + 2, T0 + 7 * S, "no_snapshot")


def test_stop_writes_books_and_shutdown_gaps_and_the_next_start_carries_them() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + S, book(A, BIDS, ASKS, 1)))
    run.feed({"k": "stop", "t": T0 + 3 * S})
    assert run.rows.book_ts == [T0 + 3 * S]
    assert run.gaps() == [(A, T0 + 3 * S, None, "shutdown")]
    later = Run(run.deriver.checkpoint())
    later.feed({"k": "start", "t": T0 + 100 * S})
    assert later.gaps() == []  # the shutdown gap stays open, no second one
    later.feed({"k": "open", "t": T0 + 101 * S, "c": 0, "e": 1},
               {"k": "sub", "t": T0 + 101 * S, "c": 0, "e": 1, "a": [A]})  # fmt: skip
    later.feed(frame(T0 + 102 * S, book(A, BIDS, ASKS, 5)))
    assert later.gaps() == [(A, T0 + 3 * S, T0 + 102 * S, "shutdown")]


def test_a_run_that_was_killed_leaves_not_running_gaps_from_its_last_record() -> None:
    run = Run()
    started(run, A)
    run.feed(frame(T0 + S, book(A, BIDS, ASKS, 1)))
    run.feed({"k": "tick", "t": T0 + 2 * S})  # then killed: no stop record
    later = Run(run.deriver.checkpoint())
    later.feed({"k": "start", "t": T0 + 50 * S})
    assert later.gaps() == [(A, T0 + 2 * S, None, "not_running")]
    later.feed({"k": "unsub", "t": T0 + 51 * S, "c": -1, "e": 0, "a": [A]})  # not wanted
    assert later.gaps()[-1] == (A, T0 + 2 * S, T0 + 51 * S, "not_running")


def test_trades_markets_and_resolutions_follow_the_adapters() -> None:
    run = Run()
    started(run, A)
    trade = {"event_type": "last_trade_price", "asset_id": A, "market": M, "price": "0.47",
             "size": "12.5", "side": "BUY", "timestamp": "1800000000123",
             "transaction_hash": "0xabc"}  # fmt: skip
    resolved = {"event_type": "market_resolved", "id": "1", "market": M, "assets_ids": [A, B],
                "winning_asset_id": B, "winning_outcome": "No",
                "timestamp": "1800000000999"}  # fmt: skip
    run.feed(frame(T0 + S, [trade, trade]), frame(T0 + 2 * S, resolved))
    assert str(run.rows.trades[1].trade_id).endswith("-2")  # two fills in one payload
    assert run.rows.trades[0].price == 0.47
    [res] = run.rows.resolutions
    assert (res.winner_token_id, res.detection_method) == (B, "ws_market_resolved")
    assert run.deriver.notices == [resolved]


def test_a_checkpoint_resumes_exactly() -> None:
    """Deriving in two halves, the second from the first's checkpoint, gives the same rows
    as deriving in one go (what each archive file relies on)."""
    records: list[dict[str, Any]] = [
        {"k": "start", "t": T0},
        {"k": "open", "t": T0 + 1, "c": 0, "e": 1},
        {"k": "sub", "t": T0 + 2, "c": 0, "e": 1, "a": [A, B]},
        frame(T0 + 3, [book(A, BIDS, ASKS, 1), book(B, [("0.3", "1")], [("0.7", "2")], 1)]),
    ]
    for k in range(60):
        t = T0 + (k + 1) * S // 2
        top = "0.9" if k % 10 == 9 else "0.45"  # every tenth delta disagrees: a gap
        records.append(frame(t, change(A, f"0.3{k % 5}", str(k % 7), "BUY", top, "0.5", 10 + k)))
        if k % 13 == 12:  # a fresh book now and then closes it
            records.append(frame(t + 2, book(A, BIDS, ASKS, 10 + k)))
        records.append({"k": "tick", "t": t + 1})
    whole = Run()
    whole.feed(*records)
    assert len(whole.rows.gaps) >= 6 and len(whole.rows.price_ts) >= 4
    first = Run()
    first.feed(*records[:40])
    second = Run(first.deriver.checkpoint())
    second.index = first.index
    second.feed(*records[40:])
    for name in ("price_ts", "price_token", "price_value", "book_ts", "book_bids", "gaps"):
        joined = getattr(first.rows, name) + getattr(second.rows, name)
        assert joined == getattr(whole.rows, name), name
    assert orjson.loads(orjson.dumps(second.deriver.checkpoint())) == whole.deriver.checkpoint()


# -- the archive file format --------------------------------------------------------------


def write_file(directory: Path, records: list[dict[str, Any]], *, close: bool) -> Path:
    writer = ArchiveWriter(directory, "0123456789abcdef", P.to_json())
    f = writer.open(T0)
    f.append({"k": "state", "t": T0, "s": Deriver(P).checkpoint()})
    for record in records:
        f.append(record)
    f.flush()
    if close:
        return writer.close()
    return f.path


def test_a_closed_file_is_named_by_its_record_count_and_reads_back(tmp_path: Path) -> None:
    records = [{"k": "tick", "t": T0 + k, "q": k} for k in range(5)]
    path = write_file(tmp_path, records, close=True)
    assert path.name.endswith("-n7.jsonl.gz")  # header, state, five ticks
    [closed] = closed_files(tmp_path)
    assert (closed.path, closed.records, closed.index) == (path, 7, 0)
    header, got = read_archive(path)
    assert header.run == "0123456789abcdef" and header.params == P.to_json()
    assert [r["k"] for r in got] == ["state"] + ["tick"] * 5
    assert is_archive(path)
    with gzip.open(path, "rt") as f:  # plain gzip JSON lines: any tool reads it
        assert orjson.loads(f.readline())["pmstore_archive"] == 1


def test_a_killed_writers_part_file_is_recovered_up_to_its_last_whole_line(
    tmp_path: Path,
) -> None:
    records = [frame(T0 + k, {"event_type": "x", "n": k}) for k in range(50)]
    part = write_file(tmp_path, records, close=False)
    data = part.read_bytes()
    part.write_bytes(data[: len(data) - 7])  # a torn tail
    seen: list[int] = []

    def replay(header: Any, recs: Any) -> dict[str, Any]:
        seen.extend(r.get("t", 0) for r in recs)
        return {"k": "state", "t": 0, "s": {}}

    closed = recover(part, replay)
    assert closed is not None and not part.exists() and partial_files(tmp_path) == []
    _header, got = read_archive(closed)
    kept = list(got)
    assert kept[-1] == {"k": "state", "t": 0, "s": {}}
    assert [r["d"] for r in kept[1:-1]] == [r["d"] for r in records[: len(kept) - 2]]
    assert len(seen) == len(kept) - 1 and len(kept) >= 40


def test_not_an_archive_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "ws.jsonl.gz"
    with gzip.open(other, "wt") as f:
        f.write('{"event_type": "book"}\n')
    assert not is_archive(other)
    with pytest.raises(PayloadError, match="not a pmstore archive"):
        read_archive(other)
