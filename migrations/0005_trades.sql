-- Trades (fills): a hypertable in 1-day chunks, de-duplicated on (trade_id, ts).
-- depends: 0001_extensions
--
-- A unique key on a hypertable must include its time column, so the
-- de-duplication key is (trade_id, ts). trade_id is never NULL: when the
-- source has no id, the writer derives one from the trade's content.

CREATE TABLE trades (
    ts       TIMESTAMPTZ NOT NULL,
    token_id TEXT COLLATE "C" NOT NULL,
    side     TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price    DOUBLE PRECISION,
    size     DOUBLE PRECISION NOT NULL,
    trade_id TEXT COLLATE "C" NOT NULL
);

DO $$
BEGIN
    PERFORM create_hypertable('trades', by_range('ts', INTERVAL '1 day'),
                              create_default_indexes => false);
END
$$;

CREATE INDEX trades_token_ts_idx ON trades (token_id, ts DESC);
CREATE UNIQUE INDEX trades_trade_id_ts_key ON trades (trade_id, ts);
