"""Command line: serve, migrate, keys, stats. `python -m proxy` is the same as `ollama-gateway`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from dotenv import load_dotenv

from proxy.cli import commands
from proxy.cli.port_check import PortUnavailable
from proxy.db.embedded import EmbeddedPostgresUnavailable
from proxy.db.errors import DATABASE_ERRORS, DatabaseUnavailable
from proxy.keys.fields import parse_key_fields, parse_models_list
from proxy.observability.logging_setup import setup_logging
from proxy.routes.query_params import parse_moment
from proxy.settings import SettingsError, load_settings, parse_setting
from proxy.signals import StopRequested, unwind_on_stop_signals
from proxy.values.digits import is_ascii_digits

EXIT_USAGE = 2  # bad settings or arguments, as argparse does
KEY_REFERENCE_HELP = "the key's id, the full key, or its prefix as `keys list` shows it"


# --- argument parsing -------------------------------------------------------------------


def _flag_type(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type` from one of the gateway's parsers: its ValueError (SettingsError is one)
    becomes argparse's error line, the same message the API or the environment would give."""

    def flag_type(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    flag_type.__name__ = name  # argparse names the flag's type in some of its messages
    return flag_type


def _setting_flag(variable: str) -> Callable[[str], Any]:
    """A flag that overrides an environment variable is parsed and reported the same way."""
    return _flag_type(variable, partial(parse_setting, variable))


def _key_field(name: str) -> Callable[[str], Any]:
    if name == "models":
        return _flag_type(name, parse_models_list)
    return _flag_type(name, lambda value: parse_key_fields({name: value}, (name,))[name])


# (field, flag that clears it, help, help of the clearing flag); DEFAULT_* settings apply on create.
_LIMIT_FLAGS = [
    (
        "burst",
        "--auto-burst",
        "requests the key may send at once (new keys: DEFAULT_BURST, else a minute of the rate)",
        "burst back to the default rule: a minute of the rate",
    ),
    (
        "max_concurrent",
        "--no-max-concurrent",
        "requests the key may have in flight at once (new keys: DEFAULT_MAX_CONCURRENT)",
        "no limit on requests in flight",
    ),
    (
        "tokens_per_day",
        "--no-tokens-per-day",
        "prompt + completion tokens per UTC day (new keys: DEFAULT_TOKENS_PER_DAY)",
        "no daily token quota",
    ),
]


def _add_key_field_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument("--name", type=_key_field("name"), required=creating, help="a label for the key")
    parser.add_argument(
        "--role",
        type=_key_field("role"),
        default="user" if creating else None,
        help="admin or user (default: user)" if creating else "admin or user",
    )
    parser.add_argument("--rate-limit", type=_key_field("rate_limit"), help="requests per hour")
    parser.add_argument(
        "--models", type=_key_field("models"), help="comma-separated allow-list of models (default: every model)"
    )
    parser.add_argument("--expires-at", type=_key_field("expires_at"), help="ISO 8601 time the key stops working")
    parser.add_argument(
        "--weight", type=_key_field("weight"), help="share of the nodes while keys wait for them (default 1)"
    )
    parser.add_argument(
        "--max-queued", type=_key_field("max_queued"), help="requests that may wait for a node at once (default 32)"
    )
    parser.add_argument(
        "--priority", type=_key_field("priority"), help="interactive (default) or batch: interactive is served first"
    )
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
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = subcommands.add_parser("serve", help="run the gateway", description="Run the gateway.")
    for flag, variable in [
        ("--host", "GATEWAY_HOST"),
        ("--port", "GATEWAY_PORT"),
        ("--ollama-base-url", "OLLAMA_BASE_URL"),
        ("--database-url", "DATABASE_URL"),
        ("--data-dir", "GATEWAY_DATA_DIR"),
        ("--log-level", "LOG_LEVEL"),
        ("--log-format", "LOG_FORMAT"),
    ]:
        serve.add_argument(flag, type=_setting_flag(variable), help=f"overrides {variable}")
    serve.add_argument(
        "--workers",
        type=_workers_flag,
        default=1,
        help="processes sharing the port (default: 1); limits are per process, see docs/operations.md",
    )
    serve.set_defaults(handler=commands.serve)

    migrate_cmd = subcommands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply the pending sql/NNN_name.sql migrations.",
    )
    migrate_cmd.set_defaults(handler=commands.migrate_database)

    keys = subcommands.add_parser("keys", help="manage API keys", description="Manage API keys.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = key_commands.add_parser(
        "create", help="create a key and print it once", description="Create a key. The key is printed this once only."
    )
    _add_key_field_flags(create, creating=True)
    create.set_defaults(handler=commands.keys_create)

    listing = key_commands.add_parser("list", help="list keys (never secrets)", description="List keys.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=commands.keys_list)

    show = key_commands.add_parser("show", help="show one key", description="Show one key.")
    show.add_argument("key", help=KEY_REFERENCE_HELP)
    show.set_defaults(handler=commands.keys_show)

    update = key_commands.add_parser("update", help="change a key's fields", description="Change a key.")
    update.add_argument("key", help=KEY_REFERENCE_HELP)
    _add_key_field_flags(update, creating=False)
    update.add_argument("--all-models", action="store_true", help="remove the model allow-list")
    update.add_argument("--no-expiry", action="store_true", help="remove the expiry time")
    active = update.add_mutually_exclusive_group()
    active.add_argument(
        "--active",
        dest="is_active",
        action="store_const",
        const=True,
        help="keep the key active; refused for a revoked key (revocation is final: create a new key)",
    )
    active.add_argument(
        "--inactive",
        dest="is_active",
        action="store_const",
        const=False,
        help="disable the key: the same as revoke, and final",
    )
    update.set_defaults(handler=commands.keys_update)

    revoke = key_commands.add_parser(
        "revoke",
        help="revoke a key (its usage history stays)",
        description="Revoke a key. Its record and usage history stay.",
    )
    revoke.add_argument("key", help=KEY_REFERENCE_HELP)
    revoke.set_defaults(handler=commands.keys_revoke)

    stats = subcommands.add_parser(
        "stats",
        help="show usage from the daily rollups",
        description="Show usage totals, per model and per day (UTC days, inclusive).",
    )
    stats.add_argument("--key", help=KEY_REFERENCE_HELP + " (default: every key)")
    stats.add_argument("--since", type=_moment_flag("since"), help="first day, ISO 8601 (default: 29 days ago)")
    stats.add_argument("--until", type=_moment_flag("until"), help="last day, ISO 8601 (default: today)")
    stats.add_argument("--json", action="store_true", help="print the JSON of GET /api/stats instead")
    stats.set_defaults(handler=commands.stats)
    return parser


def _moment_flag(name: str) -> Callable[[str], str]:
    """Checked here, kept as typed: day_range reads it again, as it does the API's query parameter."""

    def checked(value: str) -> str:
        parse_moment(name, value)
        return value

    return _flag_type(name, checked)


def _workers_flag(value: str) -> int:
    from proxy.cli.workers import MAX_WORKERS

    if not is_ascii_digits(value) or not 1 <= int(value) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of workers from 1 to {MAX_WORKERS}")
    return int(value)


# --- entry point -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    unwind_on_stop_signals()  # so that exit hooks run: they stop the embedded PostgreSQL
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
    except (commands.CommandError, EmbeddedPostgresUnavailable, DatabaseUnavailable, PortUnavailable) as exc:
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
    except StopRequested as exc:  # a stop before the event loop started; while serving, a stop exits 0
        return exc.exit_code
    return 0
