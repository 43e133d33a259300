-- Queue instead of refuse: a request that finds every node with its model at capacity
-- waits in the gateway, in fair order between keys (proxy/queue/). Each key gets its share `weight`
-- (a key of weight 3 is served three times the tokens of a key of weight 1 while both wait), how
-- many of its requests may wait at once (`max_queued`; 0 = never wait, refuse at once), and its
-- priority class (`interactive` is always served before `batch`). The defaults leave every existing
-- key an equal, interactive share.
--
-- The usage log says how long a request waited (`queue_ms`, NULL when it never had to), and the daily
-- rollups keep a histogram of those waits so that `stats` can give percentiles without raw rows.

ALTER TABLE api_keys
    ADD COLUMN weight     double precision NOT NULL DEFAULT 1 CHECK (weight > 0 AND weight <= 1000000),
    ADD COLUMN max_queued integer NOT NULL DEFAULT 32 CHECK (max_queued >= 0),
    ADD COLUMN priority   text NOT NULL DEFAULT 'interactive' CHECK (priority IN ('interactive', 'batch'));

ALTER TABLE request_log ADD COLUMN queue_ms double precision;

-- Counts per wait-time bucket (proxy/request_log/latency_histogram.py), of the requests that waited.
ALTER TABLE usage_daily ADD COLUMN queue_histogram bigint[] NOT NULL DEFAULT '{}';
