-- trades.price NOT NULL, as plan 01-03 has it.
-- depends: 0015_plan_index_names
--
-- 0005 left it nullable, though pmstore never wrote a trade without a price
-- (TradeBatch and TradeRecord require one, in [0, 1]). SET NOT NULL checks
-- every row, compressed chunks included, without rewriting the table; a
-- NULL price found first stops the migration naming its trade.

DO $$
DECLARE
    bad record;
BEGIN
    SELECT trade_id, ts INTO bad FROM trades WHERE price IS NULL LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pmstore: trade % at % has no price; plan 01-03 makes trades.price '
                        'NOT NULL', bad.trade_id, bad.ts
            USING HINT = 'delete or correct the trades without a price, then migrate again';
    END IF;
END
$$;

ALTER TABLE trades ALTER COLUMN price SET NOT NULL;
