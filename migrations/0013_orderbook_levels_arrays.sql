-- Order-book levels as float8 arrays: bids and asks become DOUBLE PRECISION[].
-- depends: 0004_orderbook_snapshots 0008_compression_retention
--
-- Each side is a two-dimensional array of [price, size] pairs, best-first as
-- before (bids by descending price, asks by ascending price): '{{0.48,1234.5},
-- {0.47,10}}', and '{}' for an empty side. The values are the JSONB numbers
-- they replace (both hold binary doubles' shortest text), so no level changes.
-- Why: binary COPY sends a float8 as its 8 bytes, which the server stores
-- as they are, where JSONB made it parse every level's number text (4x the
-- server's CPU for a book of ~60 levels; benchmarks/README.md).
--
-- Cost: a rewrite of orderbook_snapshots in this migration's transaction. On
-- the Community edition its compressed chunks are decompressed first and
-- compression is switched off for the rewrite
-- (pmstore_suspend_orderbook_compression, which the rollback uses too), then
-- switched on again with pmstore's settings
-- (pmstore_ensure_compression_and_retention, 0008); the compression policy
-- compresses the old chunks again in its next runs.

CREATE FUNCTION pmstore_suspend_orderbook_compression() RETURNS boolean
LANGUAGE plpgsql
AS $fn$
-- Remove orderbook_snapshots' compression policy, decompress its chunks and switch its
-- compression off, so that its columns can change type; true when it was on.
BEGIN
    IF NOT coalesce(
        (SELECT compression_enabled FROM timescaledb_information.hypertables
         WHERE hypertable_schema = current_schema()
           AND hypertable_name = 'orderbook_snapshots'), false) THEN
        RETURN false;
    END IF;
    PERFORM remove_compression_policy('orderbook_snapshots', if_exists => true);
    PERFORM decompress_chunk(c, if_compressed => true) FROM show_chunks('orderbook_snapshots') c;
    ALTER TABLE orderbook_snapshots SET (timescaledb.compress = false);
    RETURN true;
END
$fn$;

CREATE FUNCTION pg_temp.pmstore_levels_array(levels jsonb) RETURNS DOUBLE PRECISION[]
LANGUAGE sql IMMUTABLE STRICT
AS $fn$
    SELECT coalesce(
        array_agg(ARRAY[(level ->> 0)::float8, (level ->> 1)::float8] ORDER BY place),
        '{}')
    FROM jsonb_array_elements(levels) WITH ORDINALITY AS side(level, place)
$fn$;

DO $$
DECLARE
    compressed boolean := pmstore_suspend_orderbook_compression();
BEGIN
    ALTER TABLE orderbook_snapshots ALTER COLUMN bids DROP DEFAULT;
    ALTER TABLE orderbook_snapshots ALTER COLUMN asks DROP DEFAULT;
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids TYPE DOUBLE PRECISION[] USING pg_temp.pmstore_levels_array(bids);
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN asks TYPE DOUBLE PRECISION[] USING pg_temp.pmstore_levels_array(asks);
    ALTER TABLE orderbook_snapshots ALTER COLUMN bids SET DEFAULT '{}';
    ALTER TABLE orderbook_snapshots ALTER COLUMN asks SET DEFAULT '{}';
    ALTER TABLE orderbook_snapshots ADD CONSTRAINT orderbook_snapshots_levels_pairs CHECK (
        (cardinality(bids) = 0 OR (array_ndims(bids) = 2 AND array_length(bids, 2) = 2))
        AND (cardinality(asks) = 0 OR (array_ndims(asks) = 2 AND array_length(asks, 2) = 2)));
    IF compressed THEN
        PERFORM pmstore_ensure_compression_and_retention(false);
    END IF;
END
$$;

DROP FUNCTION pg_temp.pmstore_levels_array(jsonb);
