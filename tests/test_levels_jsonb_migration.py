"""Migrations 0014-0016, on both editions: order-book levels from float8[] back to JSONB
(every double kept exact, decimals written later kept as written), the plan's index
names, trades.price NOT NULL; and their rollbacks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import TestServer
from migration_steps import applied_after, up_to

from pmstore import migrations
from pmstore.errors import MigrationError

STEP = "0014_orderbook_levels_jsonb"
BEFORE = "0013_orderbook_levels_arrays"
LATER = ["0015_plan_index_names", "0016_trades_price_not_null", "0017_feed_gaps"]
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NOW = datetime.now(UTC).replace(microsecond=0)

# Sides as 0013 stored them (float8[] [n][2], best-first): values whose shortest decimal has
# 1 to 17 digits, tiny and huge ones (whose default text has an exponent), an empty side.
SIDES: list[tuple[list[list[float]], list[list[float]]]] = [
    ([[0.48, 1234.5], [0.47, 10.0]], [[0.5, 3.0], [0.51, 0.1]]),
    ([], []),
    ([[0.999, 1e-05]], []),
    ([], [[0.001, 123456789.25]]),
    ([[0.3333333333333333, 2.220446049250313e-16], [0.1, 0.30000000000000004]], [[0.9, 7.0]]),
    ([[round(0.99 - i / 100, 2), float(i + 1)] for i in range(60)], [[0.995, 5.5]]),
]

# The README's level queries, as it prints them (best-first [price, size] pairs).
BEST_BID = "(bids->0->>0)::numeric"
BEST_ASK = "(asks->0->>0)::numeric"
DEPTH = "jsonb_array_length(bids) + jsonb_array_length(asks)"
BID_SIZE = "(SELECT coalesce(sum((l->>1)::numeric), 0) FROM jsonb_array_elements(bids) l)"
LEVEL_ROWS = """
    SELECT b.ts, l.level, (l.pair->>0)::numeric AS price, (l.pair->>1)::numeric AS size
    FROM orderbook_snapshots b,
         jsonb_array_elements(b.bids) WITH ORDINALITY AS l(pair, level)
    WHERE b.token_id = %s AND b.ts = %s
    ORDER BY l.level
"""


@pytest.fixture(params=["community", "apache"])
def edition_server(request: pytest.FixtureRequest) -> TestServer:
    """Each edition in turn (the Community one skips where only Apache is installed)."""
    server: TestServer = request.getfixturevalue(f"{request.param}_server")
    return server


def _database(server: TestServer, name: str, folder: Path) -> str:
    """A fresh database migrated up to 0013, whose sessions default to 15-digit float text
    (extra_float_digits = 0): the conversion must not depend on it."""
    dsn = server.create_database(name)
    migrations.apply(dsn, source=up_to(BEFORE, folder))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET extra_float_digits = 0')
    return dsn


def _insert_array_books(conn: psycopg.Connection[Any], at: datetime) -> None:
    for i, (bids, asks) in enumerate(SIDES):
        conn.execute(
            "INSERT INTO orderbook_snapshots (ts, token_id, bids, asks) VALUES (%s, %s, %s, %s)",
            (at + timedelta(minutes=i), TOKEN, bids, asks),
        )


def _column_facts(conn: psycopg.Connection[Any]) -> set[tuple[Any, ...]]:
    return set(
        conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns "
            "WHERE table_name = 'orderbook_snapshots' AND column_name IN ('bids', 'asks')"
        ).fetchall()
    )


def _sides(conn: psycopg.Connection[Any], after: datetime) -> list[tuple[Any, Any]]:
    rows = conn.execute(  # binary: float8 text would follow the session's extra_float_digits
        "SELECT bids, asks FROM orderbook_snapshots WHERE ts >= %s ORDER BY ts",
        (after,),
        binary=True,
    ).fetchall()
    return [(bids, asks) for bids, asks in rows]


def _exact_decimals(conn: psycopg.Connection[Any], after: datetime) -> None:
    """Every level is the shortest decimal of its double, as numeric (not a rounded one)."""
    rows = conn.execute(
        "SELECT o.ts, side.name, level.place, level.pair ->> 0, level.pair ->> 1 "
        "FROM orderbook_snapshots o, "
        "LATERAL (VALUES ('bids', o.bids), ('asks', o.asks)) AS side(name, levels), "
        "jsonb_array_elements(side.levels) WITH ORDINALITY AS level(pair, place) "
        "WHERE o.ts >= %s ORDER BY o.ts, side.name DESC, level.place",
        (after,),
    ).fetchall()
    want = [(price, size) for bids, asks in SIDES for side in (bids, asks) for price, size in side]
    assert len(rows) == len(want)
    for (_, _, _, price, size), (p, s) in zip(rows, want, strict=True):
        assert Decimal(price) == Decimal(repr(p)) and float(price) == p, (price, p)
        assert Decimal(size) == Decimal(repr(s)) and float(size) == s, (size, s)


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The sum as numeric computes it: every digit (Decimal's default context keeps 28)."""
    with localcontext(prec=100):
        return sum(values, start=Decimal(0))


def test_levels_become_jsonb_exactly_and_go_back(
    edition_server: TestServer, tmp_path: Path
) -> None:
    name = f"t_levels_jsonb_{edition_server.info.edition}"
    dsn = _database(edition_server, name, tmp_path / "m")
    old = NOW - timedelta(days=1)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _insert_array_books(conn, old)
        assert migrations.apply(dsn).migrations == [STEP, *LATER]

        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _column_facts(conn) == {
                ("bids", "jsonb", "NO", "'[]'::jsonb"),
                ("asks", "jsonb", "NO", "'[]'::jsonb"),
            }
            assert _sides(conn, old) == SIDES  # json.loads gives back every double
            _exact_decimals(conn, old)
            queried = conn.execute(
                f"SELECT {BEST_BID}, {BEST_ASK}, {DEPTH}, {BID_SIZE} "
                "FROM orderbook_snapshots ORDER BY ts"
            ).fetchall()
            assert queried == [
                (
                    Decimal(repr(bids[0][0])) if bids else None,
                    Decimal(repr(asks[0][0])) if asks else None,
                    len(bids) + len(asks),
                    _exact_sum(Decimal(repr(s)) for _, s in bids),
                )
                for bids, asks in SIDES
            ]
            rows = conn.execute(LEVEL_ROWS, (TOKEN, old)).fetchall()
            bids = SIDES[0][0]
            assert rows == [
                (old, k + 1, Decimal(repr(p)), Decimal(repr(s))) for k, (p, s) in enumerate(bids)
            ]

            # Decimals written as JSON text are kept exactly as written, trailing zeros too.
            new = NOW + timedelta(minutes=1)
            exact = "[[0.001, 1234.50], [0.0001, 123456789012345678.123456789]]"
            conn.execute(
                "INSERT INTO orderbook_snapshots (ts, token_id, bids) VALUES (%s, %s, %s::jsonb)",
                (new, TOKEN, exact),
            )
            stored = conn.execute(
                "SELECT bids::text, asks::text, bids -> 1 ->> 1 FROM orderbook_snapshots "
                "WHERE ts = %s",
                (new,),
            ).fetchone()
            assert stored == (exact, "[]", "123456789012345678.123456789")

            for bad, error in (
                ("NULL", psycopg.errors.NotNullViolation),
                ("'{}'::jsonb", psycopg.errors.CheckViolation),
                ("'0.5'::jsonb", psycopg.errors.CheckViolation),
                ("'\"[]\"'::jsonb", psycopg.errors.CheckViolation),
            ):
                with pytest.raises(error):
                    conn.execute(
                        "INSERT INTO orderbook_snapshots (ts, token_id, asks) "
                        f"VALUES (now(), %s, {bad})",
                        (TOKEN,),
                    )

            # A level float8[] cannot hold stops the rollback, naming its book.
            odd = NOW + timedelta(minutes=2)
            conn.execute(
                "INSERT INTO orderbook_snapshots (ts, token_id, bids) "
                "VALUES (%s, %s, '[[0.5, 1], [0.4]]')",
                (odd, TOKEN),
            )
        with pytest.raises(MigrationError, match=rf"order book of token {TOKEN} .*not a"):
            migrations.rollback(dsn)
        assert migrations.status(dsn).applied[-1] == STEP  # 0015-0017 went, 0014 stayed
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM orderbook_snapshots WHERE ts = %s", (odd,))

        assert migrations.rollback(dsn, len(applied_after(dsn, BEFORE))).migrations == [STEP]
        with psycopg.connect(dsn, autocommit=True) as conn:
            types = conn.execute(
                "SELECT DISTINCT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'orderbook_snapshots'::regclass AND attname IN ('bids', 'asks')"
            ).fetchall()
            assert types == [("double precision[]",)]
            back = _sides(conn, old)
            assert back[: len(SIDES)] == SIDES  # the same doubles as before 0014
            assert back[len(SIDES) :] == [([[0.001, 1234.5], [0.0001, 1.2345678901234568e17]], [])]

        assert migrations.apply(dsn).migrations == [STEP, *LATER]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _sides(conn, old)[: len(SIDES)] == SIDES
            first = conn.execute(
                "SELECT bids::text FROM orderbook_snapshots WHERE ts = %s", (old,)
            ).fetchone()
            assert first == ("[[0.48, 1234.5], [0.47, 10]]",)
    finally:
        edition_server.drop_database(name)


def test_compressed_books_become_jsonb_and_compress_again(
    community_server: TestServer, tmp_path: Path
) -> None:
    name = "t_levels_jsonb_compressed"
    dsn = _database(community_server, name, tmp_path / "m")
    old = NOW - timedelta(days=30)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _insert_array_books(conn, old)
            compressed = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('orderbook_snapshots') c"
            ).fetchone()
            assert compressed is not None and compressed[0] >= 1

        assert migrations.apply(dsn).migrations == [STEP, *LATER]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert {fact[1] for fact in _column_facts(conn)} == {"jsonb"}
            assert _sides(conn, old) == SIDES
            _exact_decimals(conn, old)
            settings = conn.execute(
                "SELECT h.compression_enabled, s.segmentby, s.orderby "
                "FROM timescaledb_information.hypertables h "
                "JOIN timescaledb_information.hypertable_compression_settings s "
                "ON s.hypertable = format('%I.%I', h.hypertable_schema, h.hypertable_name)"
                "::regclass WHERE h.hypertable_name = 'orderbook_snapshots'"
            ).fetchall()
            assert settings == [(True, "token_id", "ts DESC")]
            policy = conn.execute(
                "SELECT config ->> 'compress_after' FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression' "
                "AND hypertable_name = 'orderbook_snapshots'"
            ).fetchall()
            assert policy == [("7 days",)]
            again = conn.execute(  # the JSONB chunks compress, and read back the same
                "SELECT count(compress_chunk(c, if_not_compressed => true)) "
                "FROM show_chunks('orderbook_snapshots') c"
            ).fetchone()
            assert again is not None and again[0] >= 1
            assert _sides(conn, old) == SIDES
            _exact_decimals(conn, old)
            # The compressed chunk's own (token_id, ts) index follows the plan's name (0015).
            chunk_indexes = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = '_timescaledb_internal' "
                "AND indexname LIKE '%%_chunk_idx_orderbook_snapshots_token_time'"
            ).fetchone()
            assert chunk_indexes is not None and chunk_indexes[0] >= 1

        # Back to float8[] from compressed JSONB chunks, compression on again.
        assert migrations.rollback(dsn, len(LATER) + 1).migrations == [*LATER[::-1], STEP]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _sides(conn, old) == SIDES
            enabled = conn.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'orderbook_snapshots'"
            ).fetchone()
            assert enabled == (True,)
    finally:
        community_server.drop_database(name)


PLAN_NAMES = {
    "idx_markets_active": "markets_active_idx",
    "idx_price_snapshots_token_time": "price_snapshots_token_ts_idx",
    "idx_orderbook_snapshots_token_time": "orderbook_snapshots_token_ts_idx",
    "idx_trades_token_time": "trades_token_ts_idx",
    "idx_trades_trade_id": "trades_trade_id_ts_key",
}
"""0015: the plan's index name -> pmstore's earlier one."""


def _indexes(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename IN ('markets', 'price_snapshots', 'orderbook_snapshots', 'trades') "
        "AND indexname NOT LIKE '%%pkey'"
    ).fetchall()
    return {name: definition for name, definition in rows}


def test_plan_index_names_and_trade_prices_required(
    edition_server: TestServer, tmp_path: Path
) -> None:
    name = f"t_plan_index_names_{edition_server.info.edition}"
    dsn = _database(edition_server, name, tmp_path / "m")
    day = NOW - timedelta(days=2)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            before = _indexes(conn)
            assert set(before) == set(PLAN_NAMES.values())
            conn.execute(  # a chunk made under the old names
                "INSERT INTO price_snapshots (ts, token_id, price) VALUES (%s, %s, 0.5)",
                (day, TOKEN),
            )
            conn.execute(
                "INSERT INTO trades (ts, token_id, side, price, size, trade_id) "
                "VALUES (%s, %s, 'BUY', NULL, 1, 'no-price')",
                (day, TOKEN),
            )
        with pytest.raises(MigrationError, match=r"trade no-price at .* has no price"):
            migrations.apply(dsn)
        assert applied_after(dsn, BEFORE) == [STEP, LATER[0]]  # 0016 refused, nothing of it
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE trades SET price = 0.25 WHERE trade_id = 'no-price'")
        assert migrations.apply(dsn).migrations == LATER[1:]

        with psycopg.connect(dsn, autocommit=True) as conn:
            after = _indexes(conn)
            assert set(after) == set(PLAN_NAMES)
            for plan_name, old_name in PLAN_NAMES.items():
                if plan_name != "idx_markets_active":  # renamed: the same definition
                    assert after[plan_name] == before[old_name].replace(old_name, plan_name)
            assert after["idx_markets_active"].endswith(
                "USING btree (active) WHERE (active = true)"
            )
            conn.execute(  # and a chunk made under the new names
                "INSERT INTO price_snapshots (ts, token_id, price) VALUES (%s, %s, 0.5)",
                (day - timedelta(days=1), TOKEN),
            )
            chunk_indexes = {
                row[0].split("_chunk_", 1)[1]
                for row in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = '_timescaledb_internal' "
                    "AND tablename IN (SELECT chunk_name FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'price_snapshots')"
                ).fetchall()
            }
            assert chunk_indexes == {"idx_price_snapshots_token_time"}
            with pytest.raises(psycopg.errors.NotNullViolation):
                conn.execute(
                    "INSERT INTO trades (ts, token_id, side, price, size, trade_id) "
                    "VALUES (now(), %s, 'SELL', NULL, 1, 'x')",
                    (TOKEN,),
                )

        assert migrations.rollback(dsn, len(LATER)).migrations == LATER[::-1]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _indexes(conn) == before
            nullable = conn.execute(
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_name = 'trades' AND column_name = 'price'"
            ).fetchone()
            assert nullable == ("YES",)
    finally:
        edition_server.drop_database(name)
