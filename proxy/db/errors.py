"""What a lost, restarting or overloaded PostgreSQL raises, and the one exception the gateway raises for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

# What the driver raises when the database is away; anything else is a bug and propagates.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseUnavailable(Exception):
    """PostgreSQL could not answer: raised where a query meets the driver, so a caller tells an outage
    from a bug (or from an OSError of some other connection, such as Ollama's) by its type alone."""


@contextlib.contextmanager
def unavailable_on_outage() -> Iterator[None]:
    """Around the statements that query the pool: what the driver raises for an outage leaves as
    DatabaseUnavailable, the driver's exception kept as its cause. Only code inside the block is
    judged, so an OSError from anywhere else is never taken for the database's."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
