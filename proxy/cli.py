"""Command line: serve, migrate, keys, stats. `python -m proxy` is the same as `ollama-gateway`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from dotenv import load_dotenv

from .apikeys import KeyRecord
from .database import describe_database, resolve_database
from .db import DATABASE_ERRORS, create_pool
from .embedded_postgres import EmbeddedPostgresUnavailable
from .key_fields import parse_key_fields, parse_models_list
from .key_store import KeyStore
from .logging_setup import setup_logging
from .migrations import migrate
from .query_params import day_range, parse_moment
from .request_log_partitions import utc_today
from .settings import Settings, SettingsError, load_settings, parse_setting
from .stats_table import format_stats
from .usage_stats import fetch_daily_usage, summarize

log = logging.getLogger("proxy")

EXIT_USAGE = 2  # bad settings or arguments, as argparse does


class CommandError(Exception):
    """A failure worth one line to the user, not a traceback."""


# --- argument parsing -------------------------------------------------------------------


def _setting_flag(variable: str) -> Callable[[str], Any]:
    """A flag that overrides an environment variable is parsed and reported the same way."""

    def parse(value: str) -> Any:
        try:
            return parse_setting(variable, value)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = variable
    return parse


def _key_field(name: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            if name == "models":
                return parse_models_list(value)
            return parse_key_fields({name: value}, (name,))[name]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


# (field, flag that clears it, help, help of the clearing flag); DEFAULT_* settings apply on create.
_LIMIT_FLAGS = [
    ("burst", "--auto-burst",
     "requests the key may send at once (new keys: DEFAULT_BURST, else a minute of the rate)",
     "burst back to the default rule: a minute of the rate"),
    ("max_concurrent", "--no-max-concurrent",
     "requests the key may have in flight at once (new keys: DEFAULT_MAX_CONCURRENT)",
     "no limit on requests in flight"),
    ("tokens_per_day", "--no-tokens-per-day",
     "prompt + completion tokens per UTC day (new keys: DEFAULT_TOKENS_PER_DAY)",
     "no daily token quota"),
]


def _limit_changes(args: argparse.Namespace) -> dict[str, int | None]:
    changes = {field: getattr(args, field) for field, *_ in _LIMIT_FLAGS if getattr(args, field) is not None}
    changes.update({field: None for field, *_ in _LIMIT_FLAGS if getattr(args, f"clear_{field}")})
    return changes


def _add_key_field_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument("--name", type=_key_field("name"), required=creating, help="a label for the key")
    parser.add_argument("--role", type=_key_field("role"), default="user" if creating else None,
                        help="admin or user (default: user)" if creating else "admin or user")
    parser.add_argument("--rate-limit", type=_key_field("rate_limit"), help="requests per hour")
    parser.add_argument("--models", type=_key_field("models"),
                        help="comma-separated allow-list of models (default: every model)")
    parser.add_argument("--expires-at", type=_key_field("expires_at"), help="ISO 8601 time the key stops working")
    for field, clear_flag, help_text, clear_help in _LIMIT_FLAGS:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--" + field.replace("_", "-"), type=_key_field(field), help=help_text)
        group.add_argument(clear_flag, dest=f"clear_{field}", action="store_true", help=clear_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ollama-gateway",
        description="API gateway for Ollama: keys, limits, usage records, untouched streaming.",
    )
    parser.add_argument("--env-file", default=".env", help="dotenv file to read (default: ./.env)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway", description="Run the gateway.")
    for flag, variable in [("--host", "GATEWAY_HOST"), ("--port", "GATEWAY_PORT"),
                           ("--ollama-base-url", "OLLAMA_BASE_URL"), ("--database-url", "DATABASE_URL"),
                           ("--data-dir", "GATEWAY_DATA_DIR"), ("--log-level", "LOG_LEVEL"),
                           ("--log-format", "LOG_FORMAT")]:
        serve.add_argument(flag, type=_setting_flag(variable), help=f"overrides {variable}")
    serve.add_argument("--workers", type=_workers_flag, default=1,
                       help="processes sharing the port (default: 1); limits are per process, see README")
    serve.set_defaults(handler=_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply pending database migrations",
                                      description="Apply the pending sql/NNN_name.sql migrations.")
    migrate_cmd.set_defaults(handler=_migrate)

    keys = commands.add_parser("keys", help="manage API keys", description="Manage API keys.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = key_commands.add_parser("create", help="create a key and print it once",
                                     description="Create a key. The key is printed this once only.")
    _add_key_field_flags(create, creating=True)
    create.set_defaults(handler=_keys_create)

    listing = key_commands.add_parser("list", help="list keys (never secrets)", description="List keys.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_keys_list)

    show = key_commands.add_parser("show", help="show one key", description="Show one key.")
    show.add_argument("key", help="the key's id or display prefix")
    show.set_defaults(handler=_keys_show)

    update = key_commands.add_parser("update", help="change a key's fields", description="Change a key.")
    update.add_argument("key", help="the key's id or display prefix")
    _add_key_field_flags(update, creating=False)
    update.add_argument("--all-models", action="store_true", help="remove the model allow-list")
    update.add_argument("--no-expiry", action="store_true", help="remove the expiry time")
    active = update.add_mutually_exclusive_group()
    active.add_argument("--active", dest="is_active", action="store_const", const=True, help="re-enable the key")
    active.add_argument("--inactive", dest="is_active", action="store_const", const=False,
                        help="disable the key")
    update.set_defaults(handler=_keys_update)

    revoke = key_commands.add_parser("revoke", help="revoke a key (its usage history stays)",
                                     description="Revoke a key. Its record and usage history stay.")
    revoke.add_argument("key", help="the key's id or display prefix")
    revoke.set_defaults(handler=_keys_revoke)

    stats = commands.add_parser("stats", help="show usage from the daily rollups",
                                description="Show usage totals, per model and per day (UTC days, inclusive).")
    stats.add_argument("--key", help="the key's id or display prefix (default: every key)")
    stats.add_argument("--since", type=_moment_flag("since"), help="first day, ISO 8601 (default: 29 days ago)")
    stats.add_argument("--until", type=_moment_flag("until"), help="last day, ISO 8601 (default: today)")
    stats.add_argument("--json", action="store_true", help="print the JSON of GET /api/stats instead")
    stats.set_defaults(handler=_stats)
    return parser


def _moment_flag(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        try:
            parse_moment(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = name
    return parse


# --- commands ------------------------------------------------------------------------------


def _workers_flag(value: str) -> int:
    from .workers import MAX_WORKERS

    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of workers from 1 to {MAX_WORKERS}")
    return int(value)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from .app import create_app
    from .server import event_loop_name, run_event_loop, serve_app

    settings = settings.with_overrides(
        host=args.host, port=args.port, ollama_base_url=args.ollama_base_url,
        database_url=args.database_url, data_dir=args.data_dir,
        log_level=args.log_level, log_format=args.log_format,
    )
    if settings.database_url and not settings.secret_key:
        raise SettingsError("SECRET_KEY", "is required with an external DATABASE_URL")
    setup_logging(settings.log_level, settings.log_format)
    embedded = settings.embedded_database
    settings = resolve_database(settings)
    demo = "on" if settings.demo_admin_key or settings.demo_user_key else "off"
    banner = [
        f"database: {describe_database(settings, embedded)}",
        f"upstream Ollama: {settings.ollama_base_url}",
        f"demo keys: {demo}",
        f"event loop: {event_loop_name()}",
    ]
    if args.workers > 1:
        from .workers import serve_workers

        for line in banner:
            log.info("%s", line)
        # After resolve_database: an embedded PostgreSQL is started once, here, for every worker.
        if serve_workers(settings, args.workers) != 0:
            raise CommandError("a worker failed; all workers stopped (see the lines above)")
        return
    run_event_loop(serve_app(create_app(settings), settings.host, settings.port, banner))


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


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(resolved.database_url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.path.name}" for m in applied))

    resolved = resolve_database(settings)
    asyncio.run(run())


def _keys_create(settings: Settings, args: argparse.Namespace) -> None:
    limits = {"burst": settings.default_burst, "max_concurrent": settings.default_max_concurrent,
              "tokens_per_day": settings.default_tokens_per_day, **_limit_changes(args)}

    async def action(store: KeyStore) -> None:
        new = await store.create(
            name=args.name, role=args.role, rate_limit=args.rate_limit or settings.default_rate_limit,
            models=args.models, expires_at=args.expires_at, **limits,
        )
        print(new.key)
        print(f"created {new.record.role} key {new.record.id} ({new.record.name}); "
              "the key above is shown this once", file=sys.stderr)

    _run_with_store(settings, action)


def _keys_list(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        records = await store.list()
        if args.json:
            print(json.dumps([r.to_json() for r in records], indent=2))
        else:
            print(format_table(records))

    _run_with_store(settings, action)


async def _one_key(store: KeyStore, id_or_prefix: str) -> KeyRecord:
    found = await store.find(id_or_prefix)
    if not found:
        raise CommandError(f"no key matches {id_or_prefix!r}")
    if len(found) > 1:
        raise CommandError(f"{id_or_prefix!r} matches {len(found)} keys; give the full id")
    return found[0]


def _keys_show(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        print(json.dumps((await _one_key(store, args.key)).to_json(), indent=2))

    _run_with_store(settings, action)


def _keys_update(settings: Settings, args: argparse.Namespace) -> None:
    changes = {field: getattr(args, field) for field in ("name", "role", "rate_limit", "models",
                                                          "expires_at", "is_active")
               if getattr(args, field) is not None}
    if args.all_models:
        changes["models"] = None
    if args.no_expiry:
        changes["expires_at"] = None
    changes.update(_limit_changes(args))
    if not changes:
        raise CommandError("nothing to change: give at least one field flag (see --help)")

    async def action(store: KeyStore) -> None:
        record = await store.update((await _one_key(store, args.key)).id, changes)
        print(json.dumps(record.to_json() if record else None, indent=2))

    _run_with_store(settings, action)


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def action(store: KeyStore) -> None:
        record = await store.revoke((await _one_key(store, args.key)).id)
        print(f"revoked key {record.id if record else args.key}")

    _run_with_store(settings, action)


def _stats(settings: Settings, args: argparse.Namespace) -> None:
    try:
        since, until = day_range(args.since, args.until, utc_today())
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    async def action(pool: asyncpg.Pool) -> None:
        key = await _one_key(KeyStore(pool, settings.secret_key or ""), args.key) if args.key else None
        rows = await fetch_daily_usage(pool, since, until, key.id if key else None)
        summary = {"key_id": str(key.id) if key else None, "since": since.isoformat(), "until": until.isoformat(),
                   **summarize(rows)}
        print(json.dumps(summary, indent=2) if args.json else format_stats(summary))

    asyncio.run(_with_pool(resolve_database(settings), action))


def format_table(records: Sequence[KeyRecord]) -> str:
    header = ("ID", "PREFIX", "NAME", "ROLE", "RATE/H", "BURST", "CONC", "TOKENS/DAY", "MODELS", "ACTIVE",
              "EXPIRES", "LAST USED")
    rows = [header] + [
        (str(r.id), r.prefix + "…", r.name, r.role, str(r.rate_limit),
         str(r.burst or "auto"), str(r.max_concurrent or "-"), str(r.tokens_per_day or "-"),
         ",".join(r.models) if r.models is not None else "*", "yes" if r.usable() else "no",
         r.expires_at.isoformat(timespec="minutes") if r.expires_at else "-",
         r.last_used_at.isoformat(timespec="minutes") if r.last_used_at else "-")
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


# --- entry point -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    load_dotenv(args.env_file, override=False)  # the real environment wins over .env
    try:
        settings = load_settings()
        if args.command != "serve":
            setup_logging("WARNING", settings.log_format)
        args.handler(settings, args)
    except SettingsError as exc:
        print(f"ollama-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, EmbeddedPostgresUnavailable) as exc:
        print(f"ollama-gateway: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ollama-gateway: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except DATABASE_ERRORS as exc:
        print(f"ollama-gateway: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0

