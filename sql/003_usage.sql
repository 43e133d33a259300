-- Usage pipeline (issue #4): daily rollups that statistics read instead of raw rows, the index
-- the admin log browser pages through, and the two functions that keep request_log's daily
-- partitions ahead of time and drop whole old ones (proxy/request_log_partitions.py calls them).

-- One row per UTC day, key and model. Written in the same transaction as the request_log rows
-- it counts, from the rows that transaction actually inserted, so a replayed batch never counts
-- twice. The histogram's buckets are defined once, in proxy/latency_histogram.py.
CREATE TABLE usage_daily (
    day               date NOT NULL,
    api_key_id        uuid,                       -- NULL: requests without a valid key
    model             text,                       -- NULL: requests that named no model
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,            -- status >= 400, or an error noted mid-stream
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,  -- milliseconds
    latency_histogram bigint[] NOT NULL           -- request counts per response-time bucket
);

-- NULLs are distinct in a plain unique index (NULLS NOT DISTINCT needs PostgreSQL 15), so the
-- key is made of sentinels; ON CONFLICT names these same expressions.
CREATE UNIQUE INDEX usage_daily_day_key_model ON usage_daily
    (day, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), COALESCE(model, ''));
CREATE INDEX usage_daily_key_day ON usage_daily (api_key_id, day);

-- Element-wise sum of two histograms; a shorter one counts as zeros where it ends.
CREATE FUNCTION usage_histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_agg(COALESCE(x, 0) + COALESCE(y, 0) ORDER BY i)
    FROM unnest(a, b) WITH ORDINALITY AS h(x, y, i)
$$;

-- Strict with no initial state: PostgreSQL starts from the first row's histogram.
CREATE AGGREGATE usage_histogram_sum(bigint[]) (SFUNC = usage_histogram_add, STYPE = bigint[]);

-- Newest first with keyset pagination on (created_at, id): GET /api/logs.
CREATE INDEX request_log_time_id ON request_log (created_at, id);

-- Creates the partition of one UTC day unless it exists. PostgreSQL refuses a new range partition
-- while the DEFAULT partition holds rows of that range (a journal replayed days later, a skewed
-- clock), so such rows move into the new table before it is attached.
CREATE FUNCTION request_log_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part  text := 'request_log_p' || to_char(day, 'YYYYMMDD');
    day_start timestamptz := day::timestamp AT TIME ZONE 'UTC';
    day_end   timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    -- Gateways starting together would race to create the same table.
    PERFORM pg_advisory_xact_lock(hashtext('request_log_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Never queue for minutes behind a long report while holding up the log writers.
    PERFORM set_config('lock_timeout', '5s', true);
    EXECUTE format('CREATE TABLE %I (LIKE request_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM request_log_default WHERE created_at >= $1 AND created_at < $2 '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', part)
        USING day_start, day_end;
    -- ATTACH builds the partitioned indexes (the primary key among them) on the new table.
    EXECUTE format('ALTER TABLE request_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, day_start, day_end);
    RETURN true;
END
$$;

-- Retention: drops every daily partition of a day before `cutoff` (whole tables, no DELETE and
-- no vacuum debt), and the rows before it that the DEFAULT partition caught.
CREATE FUNCTION request_log_drop_partitions_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('request_log_partitions'));
    PERFORM set_config('lock_timeout', '5s', true);
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'request_log'::regclass
          AND c.relname ~ '^request_log_p[0-9]{8}$'
          AND to_date(substr(c.relname, 14), 'YYYYMMDD') < cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM request_log_default WHERE created_at < cutoff::timestamp AT TIME ZONE 'UTC';
    RETURN dropped;
END
$$;
