-- Policies first, then decompress what was compressed, then switch compression off.
DO $$
DECLARE
    tbl text;
BEGIN
    IF to_regprocedure('remove_retention_policy(regclass,boolean)') IS NULL
       OR coalesce(current_setting('timescaledb.license', true), '') = 'apache' THEN
        RETURN;
    END IF;
    PERFORM remove_retention_policy('price_snapshots', if_exists => true);
    PERFORM remove_retention_policy('trades', if_exists => true);
    FOREACH tbl IN ARRAY ARRAY['price_snapshots', 'orderbook_snapshots', 'trades'] LOOP
        PERFORM remove_compression_policy(tbl::regclass, if_exists => true);
        IF (SELECT compression_enabled FROM timescaledb_information.hypertables
            WHERE hypertable_schema = current_schema() AND hypertable_name = tbl) THEN
            PERFORM decompress_chunk(c, if_compressed => true) FROM show_chunks(tbl::regclass) c;
            EXECUTE format('ALTER TABLE %I SET (timescaledb.compress = false)', tbl);
        END IF;
    END LOOP;
END
$$;

DROP FUNCTION IF EXISTS pmstore_ensure_compression_and_retention(boolean);
DELETE FROM pmstore_features WHERE feature IN ('compression', 'retention');
