-- Runs after every apply that applied something (yoyo's post-apply hook), and
-- after every `pmstore migrate` / pmstore.migrations.apply call: adds the
-- continuous aggregates, compression and retention that 0007/0008 had to
-- leave out, and the refresh job of 0011, once the server has the Community
-- edition of TimescaleDB.
-- Quiet: the migrations themselves warn about what is missing.

DO $$
BEGIN
    IF to_regprocedure('pmstore_ensure_continuous_aggregates(boolean)') IS NOT NULL THEN
        PERFORM pmstore_ensure_continuous_aggregates(false);
    END IF;
    IF to_regprocedure('pmstore_ensure_compression_and_retention(boolean)') IS NOT NULL THEN
        PERFORM pmstore_ensure_compression_and_retention(false);
    END IF;
    IF to_regprocedure('pmstore_ensure_refresh_queue(boolean)') IS NOT NULL THEN
        PERFORM pmstore_ensure_refresh_queue(false);
    END IF;
END
$$;
