-- Pending refreshes of the continuous aggregates, drained by a TimescaleDB job; retention horizons.
-- depends: 0007_continuous_aggregates 0008_compression_retention 0009_ingest_log
--
-- The hourly refresh policies of 0007 cover only [now - 3 h, now - 1 h]:
-- rows written into older hours (backfills, catch-up after an outage,
-- archive replays) would never reach price_candles_1h / trade_volume_1h.
-- So the Writer records the hours each batch touched in
-- pmstore_refresh_queue, in the batch's own transaction (durable: a crash
-- after COMMIT loses nothing), and the job pmstore_refresh_pending (every
-- 30 s) refreshes them:
-- - only the touched hours (adjacent and overlapping ranges merged), at
--   most max_hours hours per run (job config, default 168), in pieces of
--   at most a day, each piece committed (refresh_continuous_aggregate
--   cannot run inside a transaction: the job's procedure is non-atomic);
-- - never below the retention horizon in force (pmstore_refresh_floor):
--   refreshing a region whose raw chunks were dropped deletes its stored
--   candles (TimescaleDB #2198, #7960);
-- - hours at or above the aggregate's watermark stay queued: real-time
--   aggregation computes them from the raw rows, and they are refreshed
--   once a refresh (the hourly policy) has moved the watermark past them.
-- On the Apache-2 edition (no aggregates, no jobs) the tables and functions
-- exist but pmstore_refresh_targets stays empty, so the Writer records
-- nothing; the post-apply hook adds the targets and the job once the server
-- has the Community edition.

CREATE TABLE pmstore_refresh_targets (
    view_name  TEXT PRIMARY KEY,
    hypertable TEXT NOT NULL
);

CREATE INDEX pmstore_refresh_targets_hypertable_idx ON pmstore_refresh_targets (hypertable);

CREATE TABLE pmstore_refresh_queue (
    id          BIGSERIAL PRIMARY KEY,
    hypertable  TEXT NOT NULL,
    range_start TIMESTAMPTZ NOT NULL,
    range_end   TIMESTAMPTZ NOT NULL,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (range_end > range_start)
);

-- now() - drop_after of the hypertable's retention policy; NULL without one
-- (and on the Apache-2 edition, which has no policies). Rows older than
-- this are dropped by the policy's next runs.
CREATE FUNCTION pmstore_retention_horizon(hypertable regclass)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    horizon timestamptz;
BEGIN
    SELECT max(now() - (j.config->>'drop_after')::interval) INTO horizon
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'policy_retention'
      AND j.hypertable_name IS NOT NULL
      AND j.config ? 'drop_after'
      AND format('%I.%I', j.hypertable_schema, j.hypertable_name)::regclass = hypertable;
    RETURN horizon;
END
$fn$;

-- The earliest time pmstore refreshes aggregates of the hypertable from:
-- the retention horizon plus an hour's margin (a retention run during the
-- refresh drops nothing above it), rounded up to the hour, and never before
-- the hypertable's oldest chunk (chunks dropped by hand). NULL: no limit.
CREATE FUNCTION pmstore_refresh_floor(hypertable regclass)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    horizon timestamptz := pmstore_retention_horizon(hypertable) + INTERVAL '1 hour';
    oldest timestamptz;
BEGIN
    SELECT min(c.range_start) INTO oldest
    FROM timescaledb_information.chunks c
    WHERE format('%I.%I', c.hypertable_schema, c.hypertable_name)::regclass = hypertable;
    IF horizon IS NOT NULL AND time_bucket(INTERVAL '1 hour', horizon) < horizon THEN
        horizon := time_bucket(INTERVAL '1 hour', horizon) + INTERVAL '1 hour';
    END IF;
    RETURN greatest(horizon, oldest);
END
$fn$;

-- Where the continuous aggregate's materialized data ends (real-time
-- aggregation computes the rows above it); -infinity before its first refresh.
CREATE FUNCTION pmstore_cagg_watermark(view regclass)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    mat_id integer;
    mark timestamptz;
BEGIN
    SELECT c.mat_hypertable_id INTO mat_id
    FROM _timescaledb_catalog.continuous_agg c
    WHERE format('%I.%I', c.user_view_schema, c.user_view_name)::regclass = view;
    IF mat_id IS NULL THEN
        RAISE EXCEPTION 'pmstore: % is not a continuous aggregate', view;
    END IF;
    EXECUTE 'SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark($1))'
        INTO mark USING mat_id;
    IF mark <= '4000-01-01 BC'::timestamptz THEN
        RETURN '-infinity';
    END IF;
    RETURN mark;
END
$fn$;

-- Drain pmstore_refresh_queue (see the top of this file). A TimescaleDB job
-- procedure; also callable directly: CALL pmstore_refresh_pending(), outside
-- a transaction block. A drain finding another one running returns at once.
-- A refresh colliding with the policy's own refresh of an overlapping window
-- fails (55P03): the job then retries at its next run. Stops after config->'max_hours' refreshed hours (default 168),
-- leaving the rest queued for the next run.
CREATE PROCEDURE pmstore_refresh_pending(job_id integer DEFAULT NULL, config jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    budget double precision := coalesce((config->>'max_hours')::double precision, 168);
    piece CONSTANT interval := INTERVAL '1 day';
    ranges jsonb;
    r jsonb;
    i integer;
    ht text;
    s timestamptz;
    e timestamptz;
    ids bigint[];
    views text[];
    v text;
    floor_ts timestamptz;
    mark timestamptz;
    lo timestamptz;
    hi timestamptz;
    cut timestamptz;
    a timestamptz;
    b timestamptz;
    hours double precision;
    deleted integer;
BEGIN
    -- One pmstore drain at a time (two refreshes of overlapping windows fail
    -- with SQLSTATE 55P03); a session-level lock, as refreshes commit.
    -- pmstore.refresh.drain takes it first (re-entrant) and so waits instead.
    IF NOT pg_try_advisory_lock(hashtext('pmstore_refresh_pending')) THEN
        RAISE NOTICE 'pmstore: another drain of pmstore_refresh_queue is running';
        RETURN;
    END IF;
    -- The queue's rows, merged per hypertable into runs of overlapping or
    -- adjacent ranges, newest first; each run keeps the ids it merges.
    SELECT coalesce(jsonb_agg(m ORDER BY m.e DESC), '[]'::jsonb) INTO ranges
    FROM (
        SELECT g.hypertable AS h, min(g.range_start) AS s, max(g.range_end) AS e,
               array_agg(g.id) AS ids
        FROM (
            SELECT o.*, sum(CASE WHEN o.prev_end >= o.range_start THEN 0 ELSE 1 END)
                            OVER (PARTITION BY o.hypertable ORDER BY o.range_start, o.id) AS grp
            FROM (
                SELECT q.id, q.hypertable, q.range_start, q.range_end,
                       max(q.range_end) OVER (PARTITION BY q.hypertable
                                              ORDER BY q.range_start, q.id
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                           AS prev_end
                FROM pmstore_refresh_queue q
            ) o
        ) g
        GROUP BY g.hypertable, g.grp
    ) m;

    FOR i IN 0 .. jsonb_array_length(ranges) - 1 LOOP
        r := ranges -> i;
        ht := r ->> 'h';
        s := (r ->> 's')::timestamptz;
        e := (r ->> 'e')::timestamptz;
        ids := ARRAY(SELECT jsonb_array_elements_text(r -> 'ids')::bigint);
        views := ARRAY(SELECT t.view_name FROM pmstore_refresh_targets t
                       WHERE t.hypertable = ht AND to_regclass(t.view_name) IS NOT NULL
                       ORDER BY t.view_name);
        IF to_regclass(ht) IS NULL OR cardinality(views) = 0 THEN
            DELETE FROM pmstore_refresh_queue WHERE id = ANY (ids);  -- nothing to refresh
            COMMIT;
            CONTINUE;
        END IF;
        SELECT min(pmstore_cagg_watermark(x::regclass)) INTO mark FROM unnest(views) x;
        floor_ts := pmstore_refresh_floor(ht::regclass);
        lo := greatest(s, floor_ts);
        hi := least(e, mark);
        cut := NULL;
        IF lo < hi THEN
            IF budget <= 0 THEN
                EXIT;  -- the rest waits for the next run
            END IF;
            hours := extract(epoch FROM hi - lo) / 3600;
            IF hours > budget THEN
                cut := hi - make_interval(hours => ceil(budget)::integer);
                lo := cut;
                hours := extract(epoch FROM hi - lo) / 3600;
            END IF;
            b := hi;
            WHILE b > lo LOOP
                a := greatest(lo, b - piece);
                -- Re-read the floor before each piece: retention may have run meanwhile.
                a := greatest(a, pmstore_refresh_floor(ht::regclass));
                EXIT WHEN a >= b;
                FOREACH v IN ARRAY views LOOP
                    CALL refresh_continuous_aggregate(v::regclass, a, b);
                END LOOP;
                b := a;
            END LOOP;
            budget := budget - hours;
        ELSIF mark <= s AND (floor_ts IS NULL OR floor_ts <= s) THEN
            -- All above the watermark: stays queued, as one row (the queue stays short).
            IF cardinality(ids) > 1 THEN
                DELETE FROM pmstore_refresh_queue WHERE id = ANY (ids);
                GET DIAGNOSTICS deleted = ROW_COUNT;
                IF deleted > 0 THEN
                    INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end)
                    VALUES (ht, s, e);
                END IF;
                COMMIT;
            END IF;
            CONTINUE;
        END IF;
        -- Replace the merged rows by what is still pending: the part above
        -- the watermark, and the part left out by the budget. The part below
        -- the floor is dropped (its raw rows are beyond retention).
        DELETE FROM pmstore_refresh_queue WHERE id = ANY (ids);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        IF deleted > 0 THEN
            IF e > greatest(s, mark, floor_ts) THEN
                INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end)
                VALUES (ht, greatest(s, mark, floor_ts), e);
            END IF;
            IF cut IS NOT NULL THEN
                INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end)
                VALUES (ht, greatest(s, floor_ts), cut);
            END IF;
        END IF;
        COMMIT;
    END LOOP;
    PERFORM pg_advisory_unlock(hashtext('pmstore_refresh_pending'));
END
$proc$;

CREATE FUNCTION pmstore_ensure_refresh_queue(warn boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    license text := coalesce(current_setting('timescaledb.license', true), 'unknown');
BEGIN
    IF license = 'apache' THEN
        IF warn THEN
            RAISE WARNING 'pmstore: the refresh job pmstore_refresh_pending left out: the '
                          'TimescaleDB Apache-2 edition (timescaledb.license=apache) has no '
                          'continuous aggregates or jobs (the Reader computes candles live)';
        END IF;
        RETURN false;
    END IF;
    IF to_regclass('price_candles_1h') IS NOT NULL THEN
        INSERT INTO pmstore_refresh_targets (view_name, hypertable)
        VALUES ('price_candles_1h', 'price_snapshots')
        ON CONFLICT (view_name) DO NOTHING;
    END IF;
    IF to_regclass('trade_volume_1h') IS NOT NULL THEN
        INSERT INTO pmstore_refresh_targets (view_name, hypertable)
        VALUES ('trade_volume_1h', 'trades')
        ON CONFLICT (view_name) DO NOTHING;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pmstore_refresh_targets) THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                   WHERE proc_name = 'pmstore_refresh_pending'
                     AND proc_schema = current_schema()) THEN
        PERFORM add_job('pmstore_refresh_pending'::regproc, INTERVAL '30 seconds',
                        config => '{"max_hours": 168}'::jsonb);
    END IF;
    RETURN true;
END
$fn$;

DO $$
BEGIN
    PERFORM pmstore_ensure_refresh_queue();
END
$$;
