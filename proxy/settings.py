"""Settings: read once from the environment (and `.env`), validated, frozen, secrets out of repr."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, TypeVar

from yarl import URL

from proxy.values.digits import is_ascii_digits

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
MIN_SECRET_LENGTH = 32

Network = IPv4Network | IPv6Network  # a TRUSTED_PROXIES entry
# The largest value each per-key limit field takes, through the key API and CLI, and as a DEFAULT_*.
MAX_RATE_LIMIT = 10_000_000
MAX_BURST = 10_000_000
MAX_CONCURRENT = 100_000
MAX_TOKENS_PER_DAY = 10**15  # tokens_per_day is a bigint; this is far below its range


class SettingsError(ValueError):
    """A setting has a bad value; `str()` is the one line shown to the user."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def _secret() -> Any:
    # SECURITY: secrets never appear in repr(), so never in a log line or a traceback.
    return field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    ollama_base_url: URL = field(default=URL("http://127.0.0.1:11434"), repr=False)  # may hold user:password@
    # OLLAMA_BASE_URL as a list: every node, the first also in ollama_base_url; () = that one URL.
    ollama_base_urls: tuple[URL, ...] = field(default=(), repr=False)
    ollama_backends: Path | None = None  # a TOML file of nodes (proxy/backends/config.py reads it)
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path("~/.local/share/ollama-gateway").expanduser()
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = _secret()
    demo_admin_key: str | None = _secret()
    demo_user_key: str | None = _secret()
    access_token_expire_minutes: int = 60
    log_level: str = "INFO"
    log_format: str = "text"
    default_rate_limit: int = 1000
    # Limits given to keys created without them; None = no such limit (burst: a minute of the rate).
    default_burst: int | None = None
    default_max_concurrent: int | None = None
    default_tokens_per_day: int | None = None
    key_cache_ttl: float = 30.0
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 300.0
    max_body_size: int = 100 * 1024 * 1024  # buffered non-JSON bodies: multipart audio uploads
    # JSON bodies are parsed to find their model: base64 images in chat make them tens of MB.
    max_json_body_size: int = 64 * 1024 * 1024
    # Slow clients: a request head must be complete this many seconds after it starts (or after
    # the connection opens); a buffered body may stay silent `body_idle_timeout` seconds and take
    # `body_read_timeout` seconds in all. The key's concurrency slot is held meanwhile.
    header_read_timeout: float = 30.0
    body_idle_timeout: float = 30.0
    body_read_timeout: float = 300.0
    log_retention_days: int = 90  # request_log rows; 0 keeps them forever (rollups are always kept)
    trusted_proxies: tuple[Network, ...] = ()  # peers whose X-Forwarded-For is believed
    metrics_token: str | None = _secret()  # bearer token for GET /metrics, besides an admin key
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the gateway; "*" = any
    plugins: tuple[str, ...] = ()  # `package.module:factory` paths of extra middlewares
    access_log: bool = True  # one `proxy.access` line per request
    # While PostgreSQL is away: "local" = each process enforces its share of every limit; "closed" = 503.
    limits_when_db_down: str = "local"
    # The fair queue (proxy/queue/): how long a request may wait for a node slot, and what a token costs
    # a key's counter (Sheng et al., OSDI 2024: input 1, output 2).
    queue_timeout: float = 60.0
    queue_input_weight: float = 1.0
    queue_output_weight: float = 2.0

    @property
    def ollama_display_url(self) -> str:
        """OLLAMA_BASE_URL for log lines: without a password it may carry."""
        url = self.ollama_base_url
        return str(url.with_password(None) if url.password else url)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def with_overrides(self, **overrides: Any) -> Settings:
        """CLI flags win over the environment; None means "flag not given"."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _default_data_dir(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or os.path.expanduser("~")
    base = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return Path(base) / "ollama-gateway"


def parse_port(value: str) -> int:
    if not is_ascii_digits(value) or not 0 < int(value) < 65536:
        raise ValueError(f"{value!r} is not a port number (1-65535)")
    return int(value)


def parse_http_url(value: str) -> URL:
    try:
        url = URL(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    return url


def parse_http_urls(value: str) -> tuple[URL, ...]:
    """One URL, or several separated by commas: one Ollama node each."""
    urls = tuple(parse_http_url(part.strip()) for part in value.split(",") if part.strip())
    if not urls:
        raise ValueError("names no URL")
    return urls


def parse_database_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must start with postgresql:// (the value is not shown: it may hold a password)")
    try:
        URL(value).port  # noqa: B018 - parses the authority: a port that is no number fails here, not at connect
    except ValueError:
        raise ValueError(
            "is not a valid URL: check its host and port (the value is not shown: it may hold a password)"
        ) from None
    return value


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(value: str) -> T:
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a {kind.__name__}") from None
        if number <= 0:  # type: ignore[operator]
            raise ValueError(f"{value!r} must be greater than 0")
        return number

    return parse


def _seconds(value: str) -> float:
    """A positive, finite number of seconds (`float()` also reads "nan" and "inf")."""
    number = _positive(float)(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number of seconds")
    return number


def _non_negative_int(value: str) -> int:
    if not is_ascii_digits(value):
        raise ValueError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


def _limit(maximum: int) -> Callable[[str], int]:
    """A key limit default: bounded as the key API bounds it, so no default fails a key's INSERT."""
    positive = _positive(int)

    def parse(value: str) -> int:
        number = positive(value)
        if number > maximum:
            raise ValueError(f"{value!r} is more than {maximum}")
        return number

    return parse


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normal = value.upper() if upper else value.lower()
        if normal not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return normal

    return parse


def _secret_value(value: str) -> str:
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return value


def _key_value(value: str) -> str:
    if len(value) < 16 or not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("must be at least 16 printable ASCII characters without spaces")
    return value


def _networks(value: str) -> tuple[Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            # SECURITY: strict, so 10.1.2.3/8 is refused rather than silently read as 10.0.0.0/8.
            networks.append(ip_network(item))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not an IP address or CIDR network ({exc})") from None
    return tuple(networks)


def _origins(value: str) -> tuple[str, ...]:
    origins = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        if item != "*":
            url = URL(item)
            if (
                url.scheme not in ("http", "https")
                or not url.host
                or url.raw_path not in ("", "/")
                or url.query_string
                or url.fragment
            ):
                raise ValueError(f"{item!r} is not an origin like https://app.example.com")
            item = str(url.origin())  # the form a browser sends: lower case, no default port, no slash
        origins.append(item)
    return tuple(dict.fromkeys(origins))


_PLUGIN_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def _plugin_paths(value: str) -> tuple[str, ...]:
    paths = tuple(filter(None, (part.strip() for part in value.split(","))))
    for path in paths:
        if not _PLUGIN_PATH.fullmatch(path):
            raise ValueError(f"{path!r} is not a dotted path like package.module:factory")
    return paths


def _boolean(value: str) -> bool:
    normal = value.lower()
    if normal not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError(f"{value!r} is not true or false")
    return normal in ("true", "1", "yes", "on")


# Environment variable -> (field, parser). The table is the documentation's source of truth.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "OLLAMA_BASE_URL": ("ollama_base_urls", parse_http_urls),
    "OLLAMA_BACKENDS": ("ollama_backends", lambda v: Path(v).expanduser()),
    "DATABASE_URL": ("database_url", parse_database_url),
    "GATEWAY_DATA_DIR": ("data_dir", lambda v: Path(v).expanduser()),
    "GATEWAY_HOST": ("host", str),
    "GATEWAY_PORT": ("port", parse_port),
    "SECRET_KEY": ("secret_key", _secret_value),
    "DEMO_ADMIN_KEY": ("demo_admin_key", _key_value),
    "DEMO_USER_KEY": ("demo_user_key", _key_value),
    "ACCESS_TOKEN_EXPIRE_MINUTES": ("access_token_expire_minutes", _positive(int)),
    "LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "LOG_FORMAT": ("log_format", _choice(LOG_FORMATS)),
    "DEFAULT_RATE_LIMIT": ("default_rate_limit", _positive(int)),
    "DEFAULT_BURST": ("default_burst", _limit(MAX_BURST)),
    "DEFAULT_MAX_CONCURRENT": ("default_max_concurrent", _limit(MAX_CONCURRENT)),
    "DEFAULT_TOKENS_PER_DAY": ("default_tokens_per_day", _limit(MAX_TOKENS_PER_DAY)),
    "KEY_CACHE_TTL": ("key_cache_ttl", _seconds),
    "OLLAMA_CONNECT_TIMEOUT": ("upstream_connect_timeout", _seconds),
    "OLLAMA_READ_TIMEOUT": ("upstream_read_timeout", _seconds),
    "MAX_BODY_SIZE": ("max_body_size", _positive(int)),
    "MAX_JSON_BODY_SIZE": ("max_json_body_size", _positive(int)),
    "HEADER_READ_TIMEOUT": ("header_read_timeout", _seconds),
    "BODY_IDLE_TIMEOUT": ("body_idle_timeout", _seconds),
    "BODY_READ_TIMEOUT": ("body_read_timeout", _seconds),
    "LOG_RETENTION_DAYS": ("log_retention_days", _non_negative_int),
    "TRUSTED_PROXIES": ("trusted_proxies", _networks),
    "METRICS_TOKEN": ("metrics_token", _key_value),
    "CORS_ORIGINS": ("cors_origins", _origins),
    "GATEWAY_PLUGINS": ("plugins", _plugin_paths),
    "ACCESS_LOG": ("access_log", _boolean),
    "LIMITS_WHEN_DB_DOWN": ("limits_when_db_down", _choice(("local", "closed"))),
    "QUEUE_TIMEOUT": ("queue_timeout", _seconds),
    "QUEUE_INPUT_WEIGHT": ("queue_input_weight", _seconds),  # a positive finite number, as seconds are
    "QUEUE_OUTPUT_WEIGHT": ("queue_output_weight", _seconds),
}
_FIELDS = {f.name for f in fields(Settings)}
assert {name for name, _ in ENVIRONMENT.values()} <= _FIELDS


def parse_setting(variable: str, value: str) -> Any:
    """Parse one variable's value; raise SettingsError naming the variable."""
    _, parser = ENVIRONMENT[variable]
    try:
        return parser(value.strip())
    except ValueError as exc:
        raise SettingsError(variable, str(exc)) from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `env` (default: os.environ); empty values count as unset."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {"data_dir": _default_data_dir(env)}
    for variable, (name, _) in ENVIRONMENT.items():
        raw = env.get(variable, "").strip()
        if raw:
            values[name] = parse_setting(variable, raw)
    if "ollama_base_urls" in values:
        values["ollama_base_url"] = values["ollama_base_urls"][0]
    settings = Settings(**values)
    if settings.database_url and not settings.secret_key:
        raise SettingsError("SECRET_KEY", "is required with an external DATABASE_URL")
    return settings
