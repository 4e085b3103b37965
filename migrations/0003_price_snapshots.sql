-- Price snapshots: ~11.5M rows a day, a hypertable in 1-day chunks.
-- depends: 0001_extensions
--
-- token_id uses the "C" collation: token ids are decimal digit strings, and
-- byte-wise comparison makes the (token_id, ts) index far cheaper to
-- maintain than a locale collation, with the same order for equal-length ids.
-- The default (ts DESC) index is not created: time-range scans are served by
-- chunk exclusion, and every index costs ingest time.

CREATE TABLE price_snapshots (
    ts         TIMESTAMPTZ NOT NULL,
    token_id   TEXT COLLATE "C" NOT NULL,
    price      DOUBLE PRECISION NOT NULL,
    volume_24h DOUBLE PRECISION
);

DO $$
BEGIN
    PERFORM create_hypertable('price_snapshots', by_range('ts', INTERVAL '1 day'),
                              create_default_indexes => false);
END
$$;

CREATE INDEX price_snapshots_token_ts_idx ON price_snapshots (token_id, ts DESC);
