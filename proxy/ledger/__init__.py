"""The limit ledger: every key's limits shared by all gateway processes and hosts through PostgreSQL.

Processes lease rate tokens, concurrency slots and daily LLM tokens in batches and spend them locally
(limiter.py, pool.py), so a request costs no database round trip in steady state; the statements are in
store.py, the schema in sql/005_limit_ledger.sql; context.py keeps each process's heartbeat, runs the
sweeper that reclaims a dead process's slots, and switches to LIMITS_WHEN_DB_DOWN while PostgreSQL is away.
"""
