-- Compression (after 7 days) of the three hypertables, retention (90 days) of prices and trades.
-- depends: 0003_price_snapshots 0004_orderbook_snapshots 0005_trades
--
-- Compressed chunks are segmented by token_id and ordered by ts DESC (trades
-- also by trade_id, the other column of their unique key). No retention on
-- orderbook_snapshots nor on the aggregates. Like 0007 this is an explicit
-- no-op with a WARNING on the Apache-2 edition, recorded in
-- pmstore_features, and the post-apply hook adds what is missing once the
-- server has the Community edition.

CREATE FUNCTION pmstore_ensure_compression_and_retention(warn boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    license text := coalesce(current_setting('timescaledb.license', true), 'unknown');
    tbl text;
BEGIN
    IF license = 'apache' THEN
        IF warn THEN
            RAISE WARNING 'pmstore: compression of price_snapshots, orderbook_snapshots and '
                          'trades and its policies left out: the TimescaleDB Apache-2 edition '
                          '(timescaledb.license=apache) has no compression';
            RAISE WARNING 'pmstore: retention policies (90 days) on price_snapshots and trades '
                          'left out: the TimescaleDB Apache-2 edition (timescaledb.license=apache) '
                          'has no policies; drop old chunks with drop_chunks() instead';
        END IF;
        INSERT INTO pmstore_features (feature, available, detail)
        VALUES ('compression', false,
                'compression after 7 days left out: TimescaleDB Apache-2 edition '
                '(timescaledb.license=apache)'),
               ('retention', false,
                'retention policies (90 days) left out: TimescaleDB Apache-2 edition '
                '(timescaledb.license=apache)')
        ON CONFLICT (feature) DO UPDATE
            SET available = EXCLUDED.available, detail = EXCLUDED.detail, checked_at = now();
        RETURN false;
    END IF;

    FOREACH tbl IN ARRAY ARRAY['price_snapshots', 'orderbook_snapshots', 'trades'] LOOP
        IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables
                WHERE hypertable_schema = current_schema() AND hypertable_name = tbl) THEN
            EXECUTE format(
                'ALTER TABLE %I SET (timescaledb.compress, '
                'timescaledb.compress_segmentby = %L, timescaledb.compress_orderby = %L)',
                tbl, 'token_id',
                CASE WHEN tbl = 'trades' THEN 'ts DESC, trade_id' ELSE 'ts DESC' END);
        END IF;
        PERFORM add_compression_policy(tbl::regclass, INTERVAL '7 days', if_not_exists => true);
    END LOOP;
    PERFORM add_retention_policy('price_snapshots', INTERVAL '90 days', if_not_exists => true);
    PERFORM add_retention_policy('trades', INTERVAL '90 days', if_not_exists => true);

    INSERT INTO pmstore_features (feature, available, detail)
    VALUES ('compression', true,
            'price_snapshots, orderbook_snapshots, trades compressed after 7 days'),
           ('retention', true, 'price_snapshots and trades kept 90 days')
    ON CONFLICT (feature) DO UPDATE
        SET available = EXCLUDED.available, detail = EXCLUDED.detail, checked_at = now();
    RETURN true;
END
$fn$;

DO $$
BEGIN
    PERFORM pmstore_ensure_compression_and_retention();
END
$$;
