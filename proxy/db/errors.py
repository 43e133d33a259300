"""What a lost, restarting or overloaded PostgreSQL raises, and the one exception the gateway raises for it."""

from __future__ import annotations

import asyncpg

# What the driver raises when the database is away; anything else is a bug and propagates.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseUnavailable(Exception):
    """PostgreSQL could not answer: raised where a query meets the driver, so a caller tells an outage
    from a bug (or from an OSError of some other connection, such as Ollama's) by its type alone."""
