-- Order-book levels back to JSONB, as plan 01-03 has them: bids and asks are JSONB again.
-- depends: 0013_orderbook_levels_arrays
--
-- A side is a JSON array of levels, best-first (bids by descending price,
-- asks by ascending price; Polymarket sends them worst-first), each level a
-- two-number array [price, size]; [] for an empty side:
--     bids '[[0.48, 1234.5], [0.47, 10]]'    asks '[[0.5, 3], [0.51, 0.1]]'
-- the shape pmstore stored before 0013. A JSON number in JSONB is a
-- PostgreSQL numeric, so a level keeps the decimal text it was written with:
-- Polymarket's "0.001" is 0.001 (`(bids->0->>0)::numeric`), not the nearest
-- double.
--
-- Existing rows: each float8 becomes the shortest decimal that reads back as
-- the same double (extra_float_digits is set to 1 for this transaction,
-- whatever the server's setting: with 0 it would round to 15 digits). That
-- is the source's decimal text whenever it had at most 15 significant digits
-- (every Polymarket price and size seen), without trailing zeros. A NaN or
-- infinity (never written by pmstore's Writer) would become a JSON string.
--
-- Kept from 0004/0013, where the plan differs (named in
-- tests/test_schema_contract.py): NOT NULL DEFAULT '[]' (an empty side is
-- [], never NULL), and a CHECK that each side is a JSON array (0013 checked
-- the float8[] shape; a per-level check would cost the server more than the
-- JSONB parse itself, see the README).
--
-- Cost: a rewrite of orderbook_snapshots (both columns in one pass) in this
-- migration's transaction. On the Community edition its compressed chunks
-- are decompressed and compression switched off first
-- (pmstore_suspend_orderbook_compression, 0013), then switched on again with
-- pmstore's settings and policy (pmstore_ensure_compression_and_retention,
-- 0008); the policy compresses the old chunks again in its next runs.

DO $$
DECLARE
    compressed boolean;
BEGIN
    PERFORM set_config('extra_float_digits', '1', true);
    compressed := pmstore_suspend_orderbook_compression();
    ALTER TABLE orderbook_snapshots DROP CONSTRAINT orderbook_snapshots_levels_pairs;
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids DROP DEFAULT,
        ALTER COLUMN asks DROP DEFAULT;
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids TYPE JSONB USING to_jsonb(bids),
        ALTER COLUMN asks TYPE JSONB USING to_jsonb(asks);
    ALTER TABLE orderbook_snapshots
        ALTER COLUMN bids SET DEFAULT '[]',
        ALTER COLUMN asks SET DEFAULT '[]';
    ALTER TABLE orderbook_snapshots ADD CONSTRAINT orderbook_snapshots_levels_arrays
        CHECK (jsonb_typeof(bids) = 'array' AND jsonb_typeof(asks) = 'array');
    IF compressed THEN
        PERFORM pmstore_ensure_compression_and_retention(false);
    END IF;
END
$$;
