-- The limit ledger: the shared state of every key's limits, so that they hold across every gateway
-- process and host. Processes lease from it in batches and spend locally (proxy/ledger/).
--
-- Times are the gateways' own UNIX clocks (passed in), not now(): a refill is a function of elapsed
-- time, and a clock that lags another host's only grants less (refill never runs backwards).

-- Every gateway process that holds concurrency slots, with its heartbeat. One sweeper at a time
-- (pg_try_advisory_xact_lock) deletes the holders that stopped beating; their slots go with them.
CREATE TABLE limit_holders (
    holder       uuid PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per (key, limit kind):
--   rate:        amount = tokens in the key's bucket at `stamp`
--   concurrency: amount unused; the row is the lock that serialises slot grants (slots live in limit_slots)
--   tokens:      amount = LLM tokens granted on UTC `day` (reservations and allowances, settled as used)
CREATE TABLE limit_ledger (
    api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('concurrency', 'rate', 'tokens')),
    amount     double precision NOT NULL DEFAULT 0,
    stamp      double precision NOT NULL DEFAULT 0,
    day        date,
    capacity   integer,  -- rate: the burst `amount` was last measured against
    PRIMARY KEY (api_key_id, kind)
);

-- Concurrency slots each process holds for a key (in use, or spare for its next requests).
CREATE TABLE limit_slots (
    api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    holder     uuid NOT NULL REFERENCES limit_holders (holder) ON DELETE CASCADE,
    slots      integer NOT NULL CHECK (slots >= 0),
    PRIMARY KEY (api_key_id, holder)
);
CREATE INDEX limit_slots_holder ON limit_slots (holder);

-- Lease up to the wanted amount of each kind asked for (a want of 0 leaves that kind alone), all or
-- nothing: either every kind asked for grants at least its minimum (one rate token, one slot,
-- p_tokens_min LLM tokens: a request's whole reservation), or nothing is debited. Rows are created,
-- then locked, in one fixed order (concurrency, rate, tokens) so that two leases never deadlock; the
-- checks and the debits happen under those locks in this one call, never as a SELECT then an UPDATE
-- from the client (Kong's cluster policy does that and lets 10 through a limit of 5, Kong/kong#2629).
CREATE FUNCTION limit_lease(
    p_holder uuid, p_key uuid, p_now double precision, p_day date,
    p_rate_per_second double precision, p_burst integer, p_rate_want integer,
    p_max_concurrent integer, p_slots_want integer,
    p_tokens_per_day bigint, p_tokens_want bigint, p_tokens_min bigint,
    OUT rate_granted integer, OUT rate_level double precision,
    OUT slots_granted integer, OUT slots_in_use integer,
    OUT tokens_granted bigint, OUT tokens_used bigint)
LANGUAGE plpgsql AS $$
DECLARE
    row_ limit_ledger;
    ok boolean := true;
BEGIN
    rate_granted := 0; slots_granted := 0; tokens_granted := 0;
    IF p_slots_want > 0 THEN
        INSERT INTO limit_ledger (api_key_id, kind) VALUES (p_key, 'concurrency') ON CONFLICT DO NOTHING;
        PERFORM 1 FROM limit_ledger WHERE api_key_id = p_key AND kind = 'concurrency' FOR UPDATE;
        SELECT coalesce(sum(slots), 0)::integer INTO slots_in_use FROM limit_slots WHERE api_key_id = p_key;
        slots_granted := greatest(0, least(p_slots_want, p_max_concurrent - slots_in_use));
        ok := slots_granted >= 1;
    END IF;
    IF p_rate_want > 0 THEN
        INSERT INTO limit_ledger (api_key_id, kind, amount, stamp, capacity)
        VALUES (p_key, 'rate', p_burst, p_now, p_burst)
        ON CONFLICT DO NOTHING;
        SELECT * INTO row_ FROM limit_ledger WHERE api_key_id = p_key AND kind = 'rate' FOR UPDATE;
        IF p_burst > row_.capacity THEN
            -- A raised burst is usable at once, even by a key that just drained its bucket
            -- (limits/token_bucket.py, TokenBucket.reconfigure); a lowered one clamps below.
            row_.amount := p_burst;
        END IF;
        rate_level := least(p_burst, row_.amount + greatest(0, p_now - row_.stamp) * p_rate_per_second);
        -- 1e-9: float refill lands a hair below a whole token (limits/token_bucket.py, _EPS).
        rate_granted := greatest(0, least(p_rate_want, floor(rate_level + 1e-9)::integer));
        ok := ok AND rate_granted >= 1;
    END IF;
    IF p_tokens_want > 0 THEN
        -- A key's first row of the day starts from what the usage rollups already hold for it.
        INSERT INTO limit_ledger (api_key_id, kind, amount, day)
        SELECT p_key, 'tokens', coalesce(sum(prompt_tokens + completion_tokens), 0), p_day
        FROM usage_daily WHERE api_key_id = p_key AND day = p_day
        ON CONFLICT DO NOTHING;
        SELECT * INTO row_ FROM limit_ledger WHERE api_key_id = p_key AND kind = 'tokens' FOR UPDATE;
        -- A row of an earlier day counts nothing today; of a later one (a host whose clock is ahead
        -- crossed midnight first), everything: the stricter reading.
        tokens_used := CASE WHEN row_.day >= p_day THEN row_.amount::bigint ELSE 0 END;
        tokens_granted := greatest(0, least(p_tokens_want, p_tokens_per_day - tokens_used));
        ok := ok AND tokens_granted >= greatest(1, p_tokens_min);
    END IF;
    IF NOT ok THEN
        rate_granted := 0; slots_granted := 0; tokens_granted := 0;
        RETURN;
    END IF;
    IF p_slots_want > 0 THEN
        INSERT INTO limit_slots (api_key_id, holder, slots) VALUES (p_key, p_holder, slots_granted)
        ON CONFLICT (api_key_id, holder) DO UPDATE SET slots = limit_slots.slots + EXCLUDED.slots;
        slots_in_use := slots_in_use + slots_granted;
    END IF;
    IF p_rate_want > 0 THEN
        rate_level := rate_level - rate_granted;
        UPDATE limit_ledger SET amount = rate_level, stamp = greatest(stamp, p_now), capacity = p_burst
        WHERE api_key_id = p_key AND kind = 'rate';
    END IF;
    IF p_tokens_want > 0 THEN
        tokens_used := tokens_used + tokens_granted;
        UPDATE limit_ledger SET amount = tokens_used, day = greatest(day, p_day)
        WHERE api_key_id = p_key AND kind = 'tokens';
    END IF;
END $$;

-- Give back what a lease did not use: rate tokens (into the bucket, never past the burst), slots,
-- and LLM tokens of `p_day` (a negative amount charges what a request used beyond its reservation).
-- Locks in the same order as limit_lease.
CREATE FUNCTION limit_return(
    p_holder uuid, p_key uuid, p_now double precision, p_day date,
    p_rate_per_second double precision, p_burst integer, p_rate_tokens integer,
    p_slots integer, p_tokens bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    row_ limit_ledger;
BEGIN
    IF p_slots > 0 THEN
        PERFORM 1 FROM limit_ledger WHERE api_key_id = p_key AND kind = 'concurrency' FOR UPDATE;
        UPDATE limit_slots SET slots = greatest(0, slots - p_slots) WHERE api_key_id = p_key AND holder = p_holder;
        DELETE FROM limit_slots WHERE api_key_id = p_key AND holder = p_holder AND slots = 0;
    END IF;
    IF p_rate_tokens > 0 THEN
        SELECT * INTO row_ FROM limit_ledger WHERE api_key_id = p_key AND kind = 'rate' FOR UPDATE;
        IF FOUND THEN
            UPDATE limit_ledger
            SET amount = least(p_burst, least(p_burst, row_.amount + greatest(0, p_now - row_.stamp) * p_rate_per_second)
                                        + p_rate_tokens),
                stamp = greatest(row_.stamp, p_now)
            WHERE api_key_id = p_key AND kind = 'rate';
        END IF;
    END IF;
    IF p_tokens <> 0 THEN
        UPDATE limit_ledger SET amount = greatest(0, amount - p_tokens)
        WHERE api_key_id = p_key AND kind = 'tokens' AND day = p_day;
    END IF;
END $$;
