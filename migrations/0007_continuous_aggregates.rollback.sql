-- Policies first, then the aggregates (before their hypertables go in older rollbacks).
DO $$
BEGIN
    IF to_regclass('price_candles_1h') IS NOT NULL THEN
        PERFORM remove_continuous_aggregate_policy('price_candles_1h', if_exists => true);
    END IF;
    IF to_regclass('trade_volume_1h') IS NOT NULL THEN
        PERFORM remove_continuous_aggregate_policy('trade_volume_1h', if_exists => true);
    END IF;
END
$$;

DROP MATERIALIZED VIEW IF EXISTS price_candles_1h;
DROP MATERIALIZED VIEW IF EXISTS trade_volume_1h;
DROP FUNCTION IF EXISTS pmstore_ensure_continuous_aggregates(boolean);
DELETE FROM pmstore_features WHERE feature = 'continuous_aggregates';
