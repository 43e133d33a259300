-- The web console: usage over the last hour or day drawn hour by hour, and time to first
-- byte as a distribution, both read from rollups rather than raw request_log rows.
--
-- usage_hourly has usage_daily's dimensions and counters at the grain of a UTC hour. It is written in
-- the same transaction and from the same newly inserted rows as usage_daily, so replays never count
-- twice here either. It holds 24 times the rows of usage_daily, so it is kept only for
-- USAGE_HOURLY_DAYS (request_log/partitions.py prunes it); longer ranges read the daily rows.
CREATE TABLE usage_hourly (
    hour              timestamptz NOT NULL,         -- the start of the UTC hour
    api_key_id        uuid,
    model             text,
    node              text,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    response_time_sum double precision NOT NULL,
    latency_histogram bigint[] NOT NULL,
    ttfb_histogram    bigint[] NOT NULL DEFAULT '{}',
    queue_histogram   bigint[] NOT NULL DEFAULT '{}'   -- waits in the fair queue (sql/008), as in usage_daily
);
CREATE UNIQUE INDEX usage_hourly_hour_key_model_node ON usage_hourly
    (hour, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), COALESCE(model, ''),
     COALESCE(node, ''));
CREATE INDEX usage_hourly_key_hour ON usage_hourly (api_key_id, hour);

-- Time to first byte, in the same log-spaced buckets as the response time, counted only for requests
-- that had a first byte. Rows written before this file have none: an empty array, which
-- usage_histogram_add treats as zeros.
ALTER TABLE usage_daily ADD COLUMN ttfb_histogram bigint[] NOT NULL DEFAULT '{}';
