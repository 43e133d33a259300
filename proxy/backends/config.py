"""The nodes the gateway sends requests to: OLLAMA_BASE_URL's list, or the OLLAMA_BACKENDS TOML file.

The file's shape is a contract (scripts write it):

    [[backend]]
    name = "gpu1"                 # defaults to host:port
    url = "http://10.0.0.5:11434"
    capacity = 4                  # requests this node is sent at once; the rest wait in the gateway
    weight = 1                    # optional: a tie-breaker between nodes equally busy
    labels = ["a100"]             # optional

A bad file stops startup with one line naming the entry, never the URL (it may hold a password).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from proxy.settings import Settings, SettingsError, parse_http_url

DEFAULT_CAPACITY = 4  # OLLAMA_NUM_PARALLEL's largest automatic value (docs/faq.mdx, "parallel requests")
MAX_CAPACITY = 10_000
_FIELDS = frozenset({"name", "url", "capacity", "weight", "labels"})
BACKENDS_VARIABLE = "OLLAMA_BACKENDS"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    url: URL = field(repr=False)  # may hold user:password@
    capacity: int = DEFAULT_CAPACITY
    weight: float = 1.0
    labels: tuple[str, ...] = ()
    # A node of the OLLAMA_BACKENDS file is sent at most `capacity` requests at once (the rest wait in
    # the fair queue, proxy/queue/); a node given only as a URL has no known capacity: Ollama queues.
    capacity_enforced: bool = False

    @property
    def display_url(self) -> str:
        """The URL without a password it may carry: for /api/backends and log lines."""
        return str(self.url.with_password(None) if self.url.password else self.url)


def default_name(url: URL) -> str:
    return f"{url.host}:{url.port}"


def nodes_from_settings(settings: Settings) -> tuple[NodeConfig, ...]:
    """OLLAMA_BACKENDS when set, else every URL of OLLAMA_BASE_URL; SettingsError on a bad file."""
    if settings.ollama_backends is not None:
        return read_backends_file(settings.ollama_backends)
    urls = [URL(str(url)) for url in settings.ollama_base_urls or (settings.ollama_base_url,)]
    nodes = tuple(NodeConfig(default_name(url), url) for url in urls)
    _check_unique(nodes, "OLLAMA_BASE_URL")
    return nodes


def read_backends_file(path: Path) -> tuple[NodeConfig, ...]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(BACKENDS_VARIABLE, f"cannot read {str(path)!r} ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(BACKENDS_VARIABLE, f"{str(path)!r} is not TOML ({exc})") from None
    return parse_backends(document)


def parse_backends(document: dict[str, Any]) -> tuple[NodeConfig, ...]:
    entries = document.get("backend")
    unknown = sorted(set(document) - {"backend"})
    if unknown:
        raise SettingsError(BACKENDS_VARIABLE, f"unknown table {unknown[0]!r}: nodes are [[backend]] entries")
    if not isinstance(entries, list) or not entries:
        raise SettingsError(BACKENDS_VARIABLE, "names no node: add [[backend]] entries with a url")
    nodes = tuple(_node(index, entry) for index, entry in enumerate(entries, start=1))
    _check_unique(nodes, BACKENDS_VARIABLE)
    return nodes


def _node(index: int, entry: Any) -> NodeConfig:
    where = f"[[backend]] #{index}"
    if not isinstance(entry, dict):
        raise SettingsError(BACKENDS_VARIABLE, f"{where} is not a table")
    if isinstance(entry.get("name"), str) and entry["name"].strip():
        where = f"[[backend]] #{index} ({entry['name'].strip()!r})"

    def bad(problem: str) -> SettingsError:
        return SettingsError(BACKENDS_VARIABLE, f"{where}: {problem}")

    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_FIELDS))})")
    raw_url = entry.get("url")
    if not isinstance(raw_url, str):
        raise bad("url is required, a string like http://10.0.0.5:11434")
    try:
        url = parse_http_url(raw_url.strip())
    except ValueError:
        raise bad("url is not an http(s) URL with a host (the value is not shown: it may hold a password)") from None
    name = entry.get("name", default_name(url))
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or len(name) > 100:
        raise bad("name must be printable text of 1 to 100 characters")
    capacity = entry.get("capacity", DEFAULT_CAPACITY)
    if type(capacity) is not int or not 0 < capacity <= MAX_CAPACITY:
        raise bad(f"capacity must be a whole number from 1 to {MAX_CAPACITY}")
    weight = entry.get("weight", 1)
    if type(weight) not in (int, float) or not 0 < weight < float("inf"):
        raise bad("weight must be a number greater than 0")
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise bad("labels must be a list of strings")
    return NodeConfig(name.strip(), url, capacity, float(weight), tuple(labels), capacity_enforced=True)


def _check_unique(nodes: tuple[NodeConfig, ...], variable: str) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise SettingsError(variable, f"two nodes are named {node.name!r}: names must differ")
        seen.add(node.name)
