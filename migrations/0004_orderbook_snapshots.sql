-- Order-book snapshots: a hypertable in 7-day chunks.
-- depends: 0001_extensions
--
-- bids and asks are JSONB arrays of [price, size] pairs stored BEST-FIRST:
-- bids by descending price, asks by ascending price (Polymarket sends them
-- worst-first). spread and midpoint come from the best levels and are NULL
-- for empty or one-sided books.

CREATE TABLE orderbook_snapshots (
    ts       TIMESTAMPTZ NOT NULL,
    token_id TEXT COLLATE "C" NOT NULL,
    bids     JSONB NOT NULL DEFAULT '[]',
    asks     JSONB NOT NULL DEFAULT '[]',
    spread   DOUBLE PRECISION,
    midpoint DOUBLE PRECISION
);

DO $$
BEGIN
    PERFORM create_hypertable('orderbook_snapshots', by_range('ts', INTERVAL '7 days'),
                              create_default_indexes => false);
END
$$;

CREATE INDEX orderbook_snapshots_token_ts_idx ON orderbook_snapshots (token_id, ts DESC);
