"""One real `serve` process, on a database of its own, and one headless Chromium for the console tests.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run), driven by Playwright's Python
package; Playwright never downloads a browser of its own here. Each test gets a fresh browser
context (its own sessionStorage) and a record of every URL the page asked for.

Module-scoped, not session-scoped: between its calls sync Playwright marks its event loop as running in
the test thread, so it must be stopped before the async tests of other folders run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import REPO, cli_env
from tests.support.database import create_database, drop_database, server_dsn
from tests.support.factories import ADMIN_KEY, SECRET, USER_KEY
from tests.support.nginx_process import NGINX, scratch_paths
from tests.support.nginx_process import SKIP_REASON as NGINX_SKIP
from tests.support.nginx_process import command as nginx_command
from tests.support.polling import wait_until_sync
from tests.support.ports import free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no chromium (apt-get install chromium; .ci/run does)", allow_module_level=True)

_SCREENSHOTS: list[Path] = []
# Only against a hang: this 2-core machine runs other tests beside these, and a page's bundle may take long.
_HANG = 60_000


class Gateway:
    def __init__(self, port: int, log: Path, database_url: str) -> None:
        self.origin = f"http://127.0.0.1:{port}"
        self.log = log
        self.database_url = database_url

    def url(self, path: str) -> str:
        return self.origin + path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # A database of its own: the demo keys other tests made keep the limits they were made with.
    server = server_dsn(tmp_path_factory.mktemp("console-pg"))
    database_url = create_database(server)
    try:
        yield from _serve(database_url, tmp_path_factory)
    finally:
        drop_database(server, database_url)


def _serve(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    scratch = tmp_path_factory.mktemp("console-serve")
    port = free_port()
    env = cli_env(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET,
            "DEMO_ADMIN_KEY": ADMIN_KEY,
            "DEMO_USER_KEY": USER_KEY,
            "GATEWAY_PORT": str(port),
            "GATEWAY_DATA_DIR": str(scratch / "data"),
            "OLLAMA_BASE_URL": "http://127.0.0.1:9",  # nothing listens: the console needs no Ollama
            # The page's own calls count against its key like any client's; the tests make many at once.
            "DEFAULT_RATE_LIMIT": "1000000",
        }
    )
    log = scratch / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--env-file", "/dev/null", "serve"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    gateway = Gateway(port, log, database_url)
    try:
        wait_until_sync(lambda: _answers(gateway.url("/health")) or process.poll() is not None, "serve answers")
        assert process.poll() is None, log.read_text()
        yield gateway
    finally:
        process.terminate()
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser(gateway: Gateway) -> Iterator:
    # After the gateway: sync Playwright runs an event loop in this thread, and the database fixtures
    # need asyncio.run, which refuses to start inside one.
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


class Page:
    """A page in a fresh context, with every request it made and every console error it logged."""

    def __init__(self, page, screenshots: Path) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        self._screenshots = screenshots
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def shot(self, name: str) -> Path:
        path = self._screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        _SCREENSHOTS.append(path)
        return path


@pytest.fixture
def page(browser, screenshots) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(_HANG)
    yield Page(context.new_page(), screenshots)
    context.close()


@pytest.fixture
def phone(browser, screenshots) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, timezone_id="UTC"
    )
    context.set_default_timeout(_HANG)
    yield Page(context.new_page(), screenshots)
    context.close()


def run_async(coroutine) -> Any:
    """Run a coroutine from a test, beside the loop that sync Playwright keeps in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def pytest_terminal_summary(terminalreporter) -> None:
    if _SCREENSHOTS:
        terminalreporter.write_line(f"console screenshots: {_SCREENSHOTS[0].parent}")


PREFIX = "/team/ollama"  # where a shared nginx might mount the gateway


@pytest.fixture(scope="module")
def prefixed(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The same gateway behind a real nginx that serves it under PREFIX, stripped before it is passed on."""
    if NGINX is None:
        pytest.skip(NGINX_SKIP)
    tmp = tmp_path_factory.mktemp("console-nginx")
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        "events {}\nhttp {\n" + scratch_paths(tmp) + f"    server {{\n        listen 127.0.0.1:{port};\n"
        f"        location {PREFIX}/ {{\n            proxy_pass {gateway.origin}/;\n"
        "            proxy_buffering off;\n        }\n    }\n}\n"
    )
    process = subprocess.Popen(nginx_command(tmp, conf), stderr=subprocess.DEVNULL)
    try:
        wait_until_sync(lambda: _answers(f"http://127.0.0.1:{port}{PREFIX}/health"), "nginx passes the prefix on")
        behind = Gateway(port, gateway.log, gateway.database_url)
        behind.origin += PREFIX
        yield behind
    finally:
        process.terminate()
        process.wait(10)
