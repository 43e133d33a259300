"""Small named factories for tests: settings, and a gateway running on a real socket."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from proxy.app import create_app
from proxy.cli.head_timeout import GatewayRunner
from proxy.cli.server import RUNNER_OPTIONS
from proxy.settings import Settings

ADMIN_KEY = "test-admin-key-0123456789abcdef"
USER_KEY = "test-user-key-0123456789abcdef"
SECRET = "test-secret-" + "x" * 40
_SCRATCH = tempfile.TemporaryDirectory(prefix="ogw-tests-")  # removed when the test process exits


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET,
        "demo_admin_key": ADMIN_KEY,
        "demo_user_key": USER_KEY,
        "ollama_base_url": URL("http://127.0.0.1:9"),  # nothing listens on the discard port
    }
    values.update(overrides)
    if "data_dir" not in values:
        # Never the developer's own data dir: the usage log journal would be shared with it.
        values["data_dir"] = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    return Settings(**values)


class GatewayTestServer(TestServer):
    """aiohttp's TestServer; with `header_read_timeout`, on the gateway's runner as `serve` runs it."""

    async def _make_runner(self, **options: Any) -> web.AppRunner:
        if "header_read_timeout" in options:
            return GatewayRunner(self.app, **options)
        return await super()._make_runner(**options)


@dataclass
class RunningGateway:
    server: TestServer
    app: web.Application

    @property
    def url(self) -> URL:
        return self.server.make_url("")

    def u(self, path: str) -> str:
        return str(self.server.make_url(path))


async def start_gateway(aiohttp_server: Any, settings: Settings, **app_options: Any) -> RunningGateway:
    """The real app from the real factory, served the way `serve` does it, on a real port."""
    app = create_app(settings, **app_options)
    # TestServer always turns handler_cancellation on itself, as `serve` does.
    options = {k: v for k, v in RUNNER_OPTIONS.items() if k != "handler_cancellation"}
    server = await aiohttp_server(app, header_read_timeout=settings.header_read_timeout, **options)
    return RunningGateway(server, app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class RecordingSink:
    """Keeps finished request records in memory, for tests that inspect what was measured."""

    def __init__(self) -> None:
        self.records: list = []

    def enqueue(self, record) -> None:
        self.records.append(record)
