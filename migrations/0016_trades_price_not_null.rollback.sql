-- trades.price nullable again, as 0005 made it.
ALTER TABLE trades ALTER COLUMN price DROP NOT NULL;
