-- Per-key limits beyond the hourly request rate (issue #5). An Ollama generation pins the GPU for
-- its whole length and its cost is in LLM tokens, not requests, so a key also gets a burst size
-- for its token bucket, a cap on requests in flight, and a daily quota of prompt + completion
-- tokens. NULL means no such limit, except burst, where NULL means the default rule
-- (proxy/limits default_burst: one minute's worth of rate_limit), so the rule can change later.
-- The api_keys_changed trigger compares whole rows, so edits to these columns notify the gateways.

ALTER TABLE api_keys
    ADD COLUMN burst          integer CHECK (burst > 0),
    ADD COLUMN max_concurrent integer CHECK (max_concurrent > 0),
    ADD COLUMN tokens_per_day bigint  CHECK (tokens_per_day > 0);
