-- Back to JSONB levels ([[price, size], ...]), the same values; compression as in 0013.

DO $$
DECLARE
    compressed boolean := pmstore_suspend_orderbook_compression();
BEGIN
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

DROP FUNCTION pmstore_suspend_orderbook_compression();
