-- Back to float8[] levels ([n][2] arrays, as 0013 made them); compression as in 0014.
-- A level's numeric becomes the nearest double (decimals beyond a double's
-- precision are rounded). A level that is not a [price, size] pair of
-- numbers stops the rollback, naming the row (nothing is changed).

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
    bad record;
    compressed boolean;
BEGIN
    SELECT ts, token_id INTO bad FROM orderbook_snapshots
    WHERE (bids || asks) @? 'strict $[*] ? (@.type() != "array" || @.size() != 2
                                       || @[0].type() != "number" || @[1].type() != "number")'
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pmstore: the order book of token % at % has a level that is not a '
                        '[price, size] pair of numbers: float8[] levels cannot hold it',
                        bad.token_id, bad.ts
            USING HINT = 'delete or correct such rows before rolling back';
    END IF;
    compressed := pmstore_suspend_orderbook_compression();
    ALTER TABLE orderbook_snapshots DROP CONSTRAINT orderbook_snapshots_levels_arrays;
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids DROP DEFAULT,
        ALTER COLUMN asks DROP DEFAULT;
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids TYPE DOUBLE PRECISION[] USING pg_temp.pmstore_levels_array(bids),
        ALTER COLUMN asks TYPE DOUBLE PRECISION[] USING pg_temp.pmstore_levels_array(asks);
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids SET DEFAULT '{}',
        ALTER COLUMN asks SET DEFAULT '{}';
    ALTER TABLE orderbook_snapshots ADD CONSTRAINT orderbook_snapshots_levels_pairs CHECK (
        (cardinality(bids) = 0 OR (array_ndims(bids) = 2 AND array_length(bids, 2) = 2))
        AND (cardinality(asks) = 0 OR (array_ndims(asks) = 2 AND array_length(asks, 2) = 2)));
    IF compressed THEN
        PERFORM pmstore_ensure_compression_and_retention(false);
    END IF;
END
$$;

DROP FUNCTION pg_temp.pmstore_levels_array(jsonb);
