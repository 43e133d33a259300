"""The commands behind the CLI: serve, migrate, keys create/list/show/update/revoke, stats.

Each takes the loaded Settings and the parsed arguments; a failure worth one line raises CommandError.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from proxy.cli.database import describe_database, resolve_database
from proxy.cli.port_check import ensure_port_free
from proxy.cli.tables import format_stats
from proxy.db.migrations import migrate
from proxy.db.pool import create_pool, explained_connect
from proxy.keys.fields import LIMIT_FIELDS, QUEUE_FIELDS
from proxy.keys.format import DISPLAY_PREFIX_LENGTH, KeyRecord, display_prefix
from proxy.keys.store import KeyRevoked, KeyStore
from proxy.observability.logging_setup import setup_logging
from proxy.request_log.stats import fetch_daily_usage, summarize
from proxy.routes.query_params import day_range
from proxy.settings import Settings, SettingsError
from proxy.signals import ignore_stop_signals
from proxy.values.utc_day import utc_today

log = logging.getLogger("proxy")


class CommandError(Exception):
    """A failure worth one line to the user, not a traceback."""


def _limit_changes(args: argparse.Namespace) -> dict[str, int | None]:
    """The limit flags given: a value, or None for a `--no-…`/`--auto-burst` flag."""
    changes = {field: getattr(args, field) for field in LIMIT_FIELDS if getattr(args, field) is not None}
    changes.update({field: None for field in LIMIT_FIELDS if getattr(args, f"clear_{field}")})
    return changes


def _queue_changes(args: argparse.Namespace) -> dict[str, object]:
    """The fair-queue flags given (--weight, --max-queued, --priority)."""
    return {field: getattr(args, field) for field in QUEUE_FIELDS if getattr(args, field) is not None}


def serve(settings: Settings, args: argparse.Namespace) -> None:
    from proxy.app import create_app
    from proxy.cli.server import event_loop_name, run_event_loop, serve_app
    from proxy.passthrough.ollama_probe import ollama_probe_context

    settings = settings.with_overrides(
        host=args.host,
        port=args.port,
        ollama_base_urls=args.ollama_base_url,
        ollama_base_url=args.ollama_base_url[0] if args.ollama_base_url else None,
        database_url=args.database_url,
        data_dir=args.data_dir,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    if settings.database_url and not settings.secret_key:
        raise SettingsError("SECRET_KEY", "is required with an external DATABASE_URL")
    ensure_port_free(settings.host, settings.port)  # before the database starts or an admin key is printed
    setup_logging(settings.log_level, settings.log_format)
    embedded = settings.embedded_database
    settings = resolve_database(settings)
    demo = "on" if settings.demo_admin_key or settings.demo_user_key else "off"
    banner = [
        f"database: {describe_database(settings, embedded)}",
        f"upstream Ollama: {settings.ollama_display_url}",
        f"demo keys: {demo}",
        f"event loop: {event_loop_name()}",
    ]
    try:
        if args.workers > 1:
            from proxy.cli.workers import serve_workers

            for line in banner:
                log.info("%s", line)
            # After resolve_database: an embedded PostgreSQL is started once, here, for every worker.
            if serve_workers(settings, args.workers) != 0:
                raise CommandError("a worker failed; all workers stopped (see the lines above)")
            return
        app = create_app(settings)
        app.cleanup_ctx.append(ollama_probe_context)  # a warning at start if OLLAMA_BASE_URL answers nothing
        run_event_loop(serve_app(app, settings.host, settings.port, banner))
    finally:
        ignore_stop_signals()  # stopping already: let the exit hooks stop the embedded PostgreSQL


async def _with_pool(settings: Settings, action: Callable[[asyncpg.Pool], Awaitable[None]]) -> None:
    pool = await create_pool(settings.database_url or "")
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await action(pool)
    finally:
        await pool.close()


async def _with_store(settings: Settings, action: Callable[[KeyStore], Awaitable[None]]) -> None:
    await _with_pool(settings, lambda pool: action(KeyStore(pool, settings.secret_key or "")))


def _run_with_store(settings: Settings, action: Callable[[KeyStore], Awaitable[None]]) -> None:
    asyncio.run(_with_store(resolve_database(settings), action))


def migrate_database(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        with explained_connect(resolved.database_url or ""):
            conn = await asyncpg.connect(resolved.database_url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.path.name}" for m in applied))

    resolved = resolve_database(settings)
    asyncio.run(run())


def keys_create(settings: Settings, args: argparse.Namespace) -> None:
    limits = {
        "burst": settings.default_burst,
        "max_concurrent": settings.default_max_concurrent,
        "tokens_per_day": settings.default_tokens_per_day,
        **_limit_changes(args),
        **_queue_changes(args),
    }

    async def action(store: KeyStore) -> None:
        new = await store.create(
            name=args.name,
            role=args.role,
            rate_limit=args.rate_limit or settings.default_rate_limit,
            models=args.models,
            expires_at=args.expires_at,
            **limits,
        )
        print(new.key)
        print(
            f"created {new.record.role} key {new.record.id} ({new.record.name}); the key above is shown this once",
            file=sys.stderr,
        )

    _run_with_store(settings, action)


def keys_list(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        records = await store.list()
        if args.json:
            print(json.dumps([r.to_json() for r in records], indent=2))
        else:
            print(format_table(records))

    _run_with_store(settings, action)


async def _one_key(store: KeyStore, reference: str) -> KeyRecord:
    """The one key `reference` names: its id, the full key, or a display prefix that only it has."""
    found = await store.find(reference)
    # SECURITY: the reference may be a full key; it is never echoed back.
    shown = repr(display_prefix(reference)) + "…" if len(reference) > DISPLAY_PREFIX_LENGTH else repr(reference)
    if not found:
        raise CommandError(f"no key matches {shown} (give its id, the full key, or its prefix from `keys list`)")
    if len(found) > 1:
        ids = ", ".join(str(record.id) for record in found)
        raise CommandError(f"{shown} matches {len(found)} keys ({ids}): give one of these ids")
    return found[0]


def keys_show(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        print(json.dumps((await _one_key(store, args.key)).to_json(), indent=2))

    _run_with_store(settings, action)


def keys_update(settings: Settings, args: argparse.Namespace) -> None:
    changes = {
        field: getattr(args, field)
        for field in ("name", "role", "rate_limit", "models", "expires_at", "is_active")
        if getattr(args, field) is not None
    }
    if args.all_models:
        changes["models"] = None
    if args.no_expiry:
        changes["expires_at"] = None
    changes.update(_limit_changes(args))
    changes.update(_queue_changes(args))
    if not changes:
        raise CommandError("nothing to change: give at least one field flag (see --help)")

    async def action(store: KeyStore) -> None:
        try:
            record = await store.update((await _one_key(store, args.key)).id, changes)
        except KeyRevoked as exc:
            raise CommandError(str(exc)) from None
        print(json.dumps(record.to_json() if record else None, indent=2))

    _run_with_store(settings, action)


def keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        record = await store.revoke((await _one_key(store, args.key)).id)
        print(f"revoked key {record.id if record else args.key}")

    _run_with_store(settings, action)


def stats(settings: Settings, args: argparse.Namespace) -> None:
    try:
        since, until = day_range(args.since, args.until, utc_today())
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    async def action(pool: asyncpg.Pool) -> None:
        key = await _one_key(KeyStore(pool, settings.secret_key or ""), args.key) if args.key else None
        rows = await fetch_daily_usage(pool, since, until, key.id if key else None)
        summary = {
            "key_id": str(key.id) if key else None,
            "since": since.isoformat(),
            "until": until.isoformat(),
            **summarize(rows),
        }
        print(json.dumps(summary, indent=2) if args.json else format_stats(summary))

    asyncio.run(_with_pool(resolve_database(settings), action))


def format_table(records: Sequence[KeyRecord]) -> str:
    header = (
        "ID",
        "PREFIX",
        "NAME",
        "ROLE",
        "RATE/H",
        "BURST",
        "CONC",
        "TOKENS/DAY",
        "WEIGHT",
        "QUEUED",
        "PRIORITY",
        "MODELS",
        "ACTIVE",
        "EXPIRES",
        "LAST USED",
    )
    rows = [header] + [
        (
            str(r.id),
            r.prefix + "…",
            r.name,
            r.role,
            str(r.rate_limit),
            str(r.burst or "auto"),
            str(r.max_concurrent or "-"),
            str(r.tokens_per_day or "-"),
            f"{r.weight:g}",
            str(r.max_queued),
            r.priority,
            ",".join(r.models) if r.models is not None else "*",
            "yes" if r.usable() else "no",
            r.expires_at.isoformat(timespec="minutes") if r.expires_at else "-",
            r.last_used_at.isoformat(timespec="minutes") if r.last_used_at else "-",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in rows)
