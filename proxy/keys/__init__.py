"""API keys: their format and digest, the fields an admin may set, the store (SQL), the in-process cache that
keeps a known key off the database, the LISTEN/NOTIFY events that keep every gateway's cache current, the
demo and first admin keys made at start, and the short-lived tokens exchanged for a key.

Knows nothing of HTTP middlewares: the auth middleware uses it, not the other way round.
"""
