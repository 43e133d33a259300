-- What each gateway process is doing, as of its last heartbeat (every 2 s): per Ollama node, the
-- requests it has under way there and those waiting in its fair queue that may run there. GET
-- /api/backends and the console add them up, so they show the whole gateway (serve --workers, several
-- hosts) rather than the one process that answers. Holders the sweeper would reclaim are left out.
-- The ALTER takes an ACCESS EXCLUSIVE lock; every heartbeat and lease of running gateways queues behind
-- it, and past 2 s they take the ledger for away. Rather than wait behind a long transaction (a dump, an
-- open psql session), fail this start; the next one tries again. A constant default touches no row.
SET LOCAL lock_timeout = '2s';
ALTER TABLE limit_holders ADD COLUMN activity jsonb NOT NULL DEFAULT '{}';
