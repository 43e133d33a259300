-- Charts of every key together (GET /api/usage without key_id) read rollups without the key dimension.
-- A month of a gateway with 200 keys, each on 2 models and 2 nodes, is 24,800 usage_daily rows, but 496
-- rows per day, model and node: summing the histograms of the former cost seconds
-- (tests/bench/bench_usage_series.py).
--
-- At each grain of usage_daily and usage_hourly, two coarser rollups with the same counters and histograms:
-- by model and node (every key together: an all-keys view's totals, series and model and node breakdowns)
-- and by key alone (its per-key breakdown and key split). request_log/batch.py writes them like the others,
-- in the batch's transaction and from the rows that transaction inserted, so a replay never counts twice;
-- the hourly ones are pruned with usage_hourly (request_log/partitions.py). Unique keys use the same
-- sentinels for NULL as usage_daily's (sql/003_usage.sql).

CREATE TABLE usage_daily_by_model_node (
    day               date NOT NULL,
    model             text,
    node              text,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,
    latency_histogram bigint[] NOT NULL,
    ttfb_histogram    bigint[] NOT NULL,
    queue_histogram   bigint[] NOT NULL
);
CREATE UNIQUE INDEX usage_daily_by_model_node_day_model_node ON usage_daily_by_model_node
    (day, COALESCE(model, ''), COALESCE(node, ''));

CREATE TABLE usage_daily_by_key (
    day               date NOT NULL,
    api_key_id        uuid,                         -- NULL: requests without a valid key
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,
    latency_histogram bigint[] NOT NULL,
    ttfb_histogram    bigint[] NOT NULL,
    queue_histogram   bigint[] NOT NULL
);
CREATE UNIQUE INDEX usage_daily_by_key_day_key ON usage_daily_by_key
    (day, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid));

CREATE TABLE usage_hourly_by_model_node (
    hour              timestamptz NOT NULL,         -- the start of the UTC hour
    model             text,
    node              text,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,
    latency_histogram bigint[] NOT NULL,
    ttfb_histogram    bigint[] NOT NULL,
    queue_histogram   bigint[] NOT NULL
);
CREATE UNIQUE INDEX usage_hourly_by_model_node_hour_model_node ON usage_hourly_by_model_node
    (hour, COALESCE(model, ''), COALESCE(node, ''));

CREATE TABLE usage_hourly_by_key (
    hour              timestamptz NOT NULL,
    api_key_id        uuid,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,
    latency_histogram bigint[] NOT NULL,
    ttfb_histogram    bigint[] NOT NULL,
    queue_histogram   bigint[] NOT NULL
);
CREATE UNIQUE INDEX usage_hourly_by_key_hour_key ON usage_hourly_by_key
    (hour, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- Rebuilds the four tables from usage_daily and usage_hourly: here, from the rows already there; later,
-- should the two ever disagree (a gateway of an earlier version wrote usage_daily alone after this
-- migration ran: SELECT usage_rollups_regroup()). The histograms are summed bucket by bucket
-- (sum(h[1]), sum(h[2]), …), ten times faster than usage_histogram_sum's array per row.
CREATE FUNCTION usage_rollups_regroup() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    grain   record;
    buckets integer;
    sums    text;
    histogram text;
BEGIN
    -- The log writers upsert usage_daily and usage_hourly first (request_log/batch.py): holding them
    -- makes a writer wait until this commits, so no batch counts in one table and not the other.
    LOCK TABLE usage_daily, usage_hourly IN SHARE MODE;
    FOR grain IN SELECT * FROM (VALUES ('usage_daily', 'day'), ('usage_hourly', 'hour')) AS g(source, period) LOOP
        EXECUTE format('SELECT max(greatest(cardinality(latency_histogram), cardinality(ttfb_histogram), '
                       'cardinality(queue_histogram))) FROM %I', grain.source) INTO buckets;
        sums := 'sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(response_time_sum)';
        FOREACH histogram IN ARRAY ARRAY['latency_histogram', 'ttfb_histogram', 'queue_histogram'] LOOP
            -- A bucket some rows lack (arrays from before sql/008 and sql/009 are empty) counts as zero.
            sums := sums || ', ' || COALESCE(
                (SELECT 'ARRAY[' || string_agg(format('COALESCE(sum(%I[%s]), 0)::bigint', histogram, i), ', '
                                               ORDER BY i) || ']'
                 FROM generate_series(1, buckets) AS i),
                '''{}''::bigint[]');
        END LOOP;
        EXECUTE format('DELETE FROM %I', grain.source || '_by_model_node');
        -- NULL and '' are one row in every rollup's unique key; max() keeps '' if there is one.
        EXECUTE format('INSERT INTO %I (%I, model, node, requests, errors, prompt_tokens, completion_tokens, '
                       'response_time_sum, latency_histogram, ttfb_histogram, queue_histogram) '
                       'SELECT %I, max(model), max(node), %s FROM %I '
                       'GROUP BY %I, COALESCE(model, ''''), COALESCE(node, '''')',
                       grain.source || '_by_model_node', grain.period, grain.period, sums, grain.source,
                       grain.period);
        EXECUTE format('DELETE FROM %I', grain.source || '_by_key');
        EXECUTE format('INSERT INTO %I (%I, api_key_id, requests, errors, prompt_tokens, completion_tokens, '
                       'response_time_sum, latency_histogram, ttfb_histogram, queue_histogram) '
                       'SELECT %I, api_key_id, %s FROM %I GROUP BY %I, api_key_id',
                       grain.source || '_by_key', grain.period, grain.period, sums, grain.source, grain.period);
    END LOOP;
END
$$;

SELECT usage_rollups_regroup();
