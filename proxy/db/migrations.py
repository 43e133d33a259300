"""Schema migrations: apply pending sql/NNN_name.sql files in order, once, under an advisory lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
_FILE_NAME = re.compile(r"^(\d+)_([\w-]+)\.sql$")

# Any constant works; it only has to be the same in every gateway process.
ADVISORY_LOCK_ID = 0x6F6C6C616D61  # "ollama"

CREATE_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Migrations found in `sql_dir`; the version is the file name's leading digits."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path.name}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply what is pending, each file in its own transaction; return what was applied.

    The session-level advisory lock makes a second gateway starting at the same moment wait,
    then find nothing left to do, instead of racing to create the same tables.
    """
    pending_all = discover(sql_dir)
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_ID)
    try:
        await conn.execute(CREATE_VERSIONS_TABLE)
        applied = {row["version"] for row in await conn.fetch(SELECT_APPLIED)}
        pending = [m for m in pending_all if m.version not in applied]
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.path.read_text())
                await conn.execute(INSERT_APPLIED, migration.version, migration.name)
            log.info("applied migration %03d_%s", migration.version, migration.name)
        return pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_ID)
