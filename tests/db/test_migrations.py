"""The migration runner: in order, once, safe when two gateways start together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from proxy.db.migrations import discover, migrate


def test_every_sql_file_is_a_numbered_migration_with_a_why_comment():
    migrations = discover()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    for migration in migrations:
        assert migration.path.read_text().startswith("--"), migration.path.name


def test_bad_file_names_are_refused(tmp_path):
    (tmp_path / "first.sql").write_text("-- x")
    with pytest.raises(ValueError, match="NNN_name.sql"):
        discover(tmp_path)


async def test_concurrent_starts_apply_each_migration_once(fresh_database):
    conns = [await asyncpg.connect(fresh_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in conns))
        assert sorted(len(applied) for applied in results) == [0, 0, 0, len(discover())]
        versions = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in discover()]
        assert await migrate(conns[0]) == []
    finally:
        for conn in conns:
            await conn.close()


async def test_a_failing_migration_rolls_back_alone(fresh_database, tmp_path):
    (tmp_path / "001_good.sql").write_text("-- ok\nCREATE TABLE good (x int);")
    (tmp_path / "002_bad.sql").write_text("-- broken\nCREATE TABLE bad (x int); SELECT no_such_function();")
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('good') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('bad') IS NULL")
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
    finally:
        await conn.close()
