-- Back to JSONB levels ([[price, size], ...]), the same values; compression as in 0013.

DO $$
DECLARE
    compressed boolean := coalesce(
        (SELECT compression_enabled FROM timescaledb_information.hypertables
         WHERE hypertable_schema = current_schema()
           AND hypertable_name = 'orderbook_snapshots'), false);
BEGIN
    IF compressed THEN
        PERFORM remove_compression_policy('orderbook_snapshots', if_exists => true);
        PERFORM decompress_chunk(c, if_compressed => true)
        FROM show_chunks('orderbook_snapshots') c;
        ALTER TABLE orderbook_snapshots SET (timescaledb.compress = false);
    END IF;

    ALTER TABLE orderbook_snapshots DROP CONSTRAINT IF EXISTS orderbook_snapshots_levels_pairs;
    ALTER TABLE orderbook_snapshots ALTER COLUMN bids DROP DEFAULT;
    ALTER TABLE orderbook_snapshots ALTER COLUMN asks DROP DEFAULT;
    ALTER TABLE orderbook_snapshots ALTER COLUMN bids TYPE JSONB USING to_jsonb(bids);
    ALTER TABLE orderbook_snapshots ALTER COLUMN asks TYPE JSONB USING to_jsonb(asks);
    ALTER TABLE orderbook_snapshots ALTER COLUMN bids SET DEFAULT '[]';
    ALTER TABLE orderbook_snapshots ALTER COLUMN asks SET DEFAULT '[]';

    IF compressed THEN
        PERFORM pmstore_ensure_compression_and_retention(false);
    END IF;
END
$$;
