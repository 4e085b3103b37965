-- Continuous aggregates: hourly price candles and hourly trade volume, refreshed hourly.
-- depends: 0003_price_snapshots 0005_trades
--
-- The Apache-2 edition of TimescaleDB has no continuous aggregates or
-- policies (SQLSTATE 0A000). There this migration completes as an explicit
-- no-op: it raises a WARNING naming what was left out and records the
-- feature as missing in pmstore_features. The work lives in
-- pmstore_ensure_continuous_aggregates(), which the post-apply hook calls
-- again on every apply, so a server that later gains the Community edition
-- gets the aggregates then. Created WITH NO DATA: WITH DATA is refused
-- inside a transaction, and yoyo runs each migration in one.

CREATE FUNCTION pmstore_ensure_continuous_aggregates(warn boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    license text := coalesce(current_setting('timescaledb.license', true), 'unknown');
    missing text := 'continuous aggregates price_candles_1h and trade_volume_1h '
                    'and their refresh policies';
BEGIN
    IF license = 'apache' THEN
        IF warn THEN
            RAISE WARNING 'pmstore: % left out: the TimescaleDB Apache-2 edition '
                          '(timescaledb.license=apache) has no continuous aggregates', missing;
        END IF;
        INSERT INTO pmstore_features (feature, available, detail)
        VALUES ('continuous_aggregates', false,
                missing || ' left out: TimescaleDB Apache-2 edition (timescaledb.license=apache)')
        ON CONFLICT (feature) DO UPDATE
            SET available = EXCLUDED.available, detail = EXCLUDED.detail, checked_at = now();
        RETURN false;
    END IF;

    IF to_regclass('price_candles_1h') IS NULL THEN
        EXECUTE $view$
            CREATE MATERIALIZED VIEW price_candles_1h
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
                   token_id,
                   first(price, ts) AS open,
                   max(price)       AS high,
                   min(price)       AS low,
                   last(price, ts)  AS close,
                   avg(volume_24h)  AS avg_volume
            FROM price_snapshots
            GROUP BY bucket, token_id
            WITH NO DATA
        $view$;
    END IF;
    IF to_regclass('trade_volume_1h') IS NULL THEN
        EXECUTE $view$
            CREATE MATERIALIZED VIEW trade_volume_1h
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
                   token_id,
                   count(*)          AS trade_count,
                   sum(size)         AS total_size,
                   sum(price * size) AS total_value,
                   avg(price)        AS avg_price
            FROM trades
            GROUP BY bucket, token_id
            WITH NO DATA
        $view$;
    END IF;
    PERFORM add_continuous_aggregate_policy('price_candles_1h',
        start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 hour',
        schedule_interval => INTERVAL '1 hour', if_not_exists => true);
    PERFORM add_continuous_aggregate_policy('trade_volume_1h',
        start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 hour',
        schedule_interval => INTERVAL '1 hour', if_not_exists => true);

    INSERT INTO pmstore_features (feature, available, detail)
    VALUES ('continuous_aggregates', true, 'price_candles_1h, trade_volume_1h, refreshed hourly')
    ON CONFLICT (feature) DO UPDATE
        SET available = EXCLUDED.available, detail = EXCLUDED.detail, checked_at = now();
    RETURN true;
END
$fn$;

DO $$
BEGIN
    PERFORM pmstore_ensure_continuous_aggregates();
END
$$;
