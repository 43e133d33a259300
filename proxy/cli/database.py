"""Which database and secret a command uses: DATABASE_URL + SECRET_KEY, or the embedded defaults."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from yarl import URL

from proxy.db.embedded import ensure_database, start_embedded_postgres
from proxy.db.secret_file import load_or_create_secret
from proxy.settings import Settings

log = logging.getLogger(__name__)


def resolve_database(settings: Settings) -> Settings:
    """Settings with `database_url` and `secret_key` filled in, starting the embedded server if needed."""
    if not settings.embedded_database:
        return settings
    log.info("DATABASE_URL is unset: using the embedded PostgreSQL in %s", settings.data_dir / "pgdata")
    admin_dsn = start_embedded_postgres(settings.data_dir)
    dsn = asyncio.run(ensure_database(admin_dsn))
    secret = settings.secret_key or load_or_create_secret(settings.data_dir)
    return replace(settings, database_url=dsn, secret_key=secret)


def describe_database(settings: Settings, embedded: bool) -> str:
    """For log lines: where the data lives, never a password."""
    if embedded:
        return f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}"
    url = URL(settings.database_url or "")
    where = f"{url.host or 'localhost'}:{url.port or 5432}{url.path}"
    return f"PostgreSQL at {url.user + '@' if url.user else ''}{where}"
