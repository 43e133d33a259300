-- The gateway's state: API keys (only digests, never plaintext) and one row per request.
-- request_log is partitioned by time from the start so that retention drops whole partitions
-- and never has to DELETE rows; a DEFAULT partition catches anything outside the ranges made ahead.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    key_hash     bytea NOT NULL UNIQUE,          -- HMAC-SHA256(SECRET_KEY, key)
    prefix       text NOT NULL,                  -- first characters, for display only
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'user')),
    rate_limit   integer NOT NULL CHECK (rate_limit > 0),   -- requests per hour
    models       text[],                         -- allow-list; NULL means every model
    is_active    boolean NOT NULL DEFAULT true,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

-- Every gateway process caches keys; this tells them (and only at COMMIT) that one changed,
-- whoever changed it: the admin API, the CLI, or another gateway. last_used_at alone is not
-- a change worth a cache flush, since the log writer bumps it with every batch.
CREATE FUNCTION api_keys_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(OLD) - 'last_used_at') = (to_jsonb(NEW) - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('api_keys_changed', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed
AFTER INSERT OR UPDATE OR DELETE ON api_keys
FOR EACH ROW EXECUTE FUNCTION api_keys_notify();

CREATE TABLE request_log (
    id                uuid NOT NULL,             -- the request id, sent back as X-Request-ID
    api_key_id        uuid,                      -- NULL when no valid key was presented
    endpoint          text NOT NULL,
    method            text NOT NULL,
    model             text,
    status_code       smallint NOT NULL,
    prompt_tokens     integer,
    completion_tokens integer,
    tokens_used       integer,
    usage_estimated   boolean NOT NULL DEFAULT false,
    response_time     double precision,          -- milliseconds, whole request
    ttfb              double precision,          -- milliseconds to the first upstream byte
    bytes_in          bigint,
    bytes_out         bigint,
    client_ip         inet,
    error             text,
    created_at        timestamptz NOT NULL,
    -- The partition key must be part of every unique constraint; the gateway sets created_at
    -- once per request, so a retried batch still conflicts on (id, created_at).
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE request_log_default PARTITION OF request_log DEFAULT;

CREATE INDEX request_log_key_time ON request_log (api_key_id, created_at);
