"""What a failed connection to PostgreSQL means, in one line that names the server and its setting.

A new user's first error is most often "Connection refused": alone it does not say that the database
was meant, nor which setting points there. The line never holds the DSN itself: it may hold a password.
"""

from __future__ import annotations

import asyncio
import socket

import asyncpg
from yarl import URL

from proxy.db.errors import DatabaseUnavailable


def connection_failure(exc: BaseException, dsn: str, setting: str = "DATABASE_URL") -> DatabaseUnavailable:
    """`exc`, raised while connecting to `dsn`, as one line for the user naming the server and `setting`."""
    host, port, user, database = _parts(dsn)
    at = f"the database at {_address(host, port)} ({setting})"
    if isinstance(exc, socket.gaierror):
        text = f"the database host {host!r} ({setting}) could not be resolved: {exc.strerror}"
    elif isinstance(exc, ConnectionRefusedError):
        text = f"{at} refused the connection: is PostgreSQL running and listening there?"
    elif isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        text = f"{at} did not answer in time"
    elif isinstance(exc, OSError):
        text = f"{at} is unreachable: {exc.strerror or exc}"
    elif isinstance(exc, asyncpg.InvalidPasswordError):
        text = f"{at} rejected the password of user {user!r}"
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        text = f"{at} refused user {user!r}: {exc}"  # no such role, or no pg_hba.conf entry
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        text = f"{at} has no database {database!r}: create it (createdb {database}) or correct the name"
    elif isinstance(exc, asyncpg.PostgresError):
        text = f"{at} refused the session: {exc}"  # too many connections, starting up, ...
    else:  # a DSN the driver cannot use (a bad sslmode or port), or a protocol error
        text = f"{setting} cannot be used for {_address(host, port)}: {type(exc).__name__}: {exc}"
    return DatabaseUnavailable(_without_password(text, dsn))


def _parts(dsn: str) -> tuple[str, str, str, str]:
    """Host, port, user and database as libpq would default them (libpq-connect.html#LIBPQ-PARAMKEYWORDS)."""
    try:
        url = URL(dsn)
        host = url.host or url.query.get("host") or "localhost"
        port = str(url.port or url.query.get("port") or 5432)
        user = url.user or url.query.get("user") or "postgres"
        database = url.path.lstrip("/") or url.query.get("dbname") or user
    except (ValueError, TypeError):  # e.g. several hosts, which yarl does not parse
        return "the host in the URL", "5432", "postgres", "postgres"
    return host, port, user, database


def _address(host: str, port: str) -> str:
    if host.startswith("/"):
        return f"socket {host}/.s.PGSQL.{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _without_password(text: str, dsn: str) -> str:
    try:
        password = URL(dsn).password
    except (ValueError, TypeError):
        password = None
    return text.replace(password, "***") if password else text
