"""The repository's nginx.conf, run by a real nginx as the current user, for tests.

Only what cannot be the same outside a container changes: the upstream address, the listen
address, and the pid, log and temp paths (into a tmp dir). Everything else is the file as shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "nginx.conf"
NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
)
SKIP_REASON = "nginx is not installed (.ci/run installs it: apt-get install nginx-light)"


def render_conf(tmp: Path, *, upstream: str, listen: str) -> Path:
    """nginx.conf with the substitutions above, written into `tmp`; returns its path."""
    replacements = {
        "server gateway:8000;": f"server {upstream};",
        "listen 80;": f"listen {listen};",
        "http {\n": f"http {{\n{scratch_paths(tmp)}",
    }
    text = NGINX_CONF.read_text()
    for old, new in replacements.items():
        # Loud when nginx.conf changes shape, rather than silently testing something else.
        assert text.count(old) == 1, f"nginx.conf must contain {old!r} exactly once"
        text = text.replace(old, new)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


def scratch_paths(tmp: Path) -> str:
    """http-level directives that put nginx's temp files and access log into `tmp`."""
    temp_paths = "".join(f"    {directive} {tmp / name};\n" for directive, name in _temp_dirs())
    return f"{temp_paths}    access_log {tmp / 'access.log'};\n"


def command(tmp: Path, conf: Path, *extra: str) -> list[str]:
    # One -g only: nginx keeps the last one it is given.
    directives = f"daemon off; pid {tmp / 'nginx.pid'}; error_log {tmp / 'error.log'} info;"
    if os.geteuid() == 0:
        # As root the workers would switch to the compiled-in user (often nobody), which cannot
        # enter the tmp dir: keep them as the current user, as for everyone else.
        directives += " user root;"
    assert NGINX is not None
    return [NGINX, "-p", f"{tmp}/", "-c", str(conf), "-g", directives, *extra]


@contextlib.asynccontextmanager
async def running_nginx(tmp: Path, *, upstream: str) -> AsyncIterator[str]:
    """nginx in the foreground in front of `upstream` (host:port); yields its base URL."""
    port = free_port()
    conf = render_conf(tmp, upstream=upstream, listen=f"127.0.0.1:{port}")
    with open(tmp / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(command(tmp, conf), stderr=stderr)
    try:
        await _until_listening(process, port, tmp)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)  # fast shutdown: workers close their connections
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_listening(process: subprocess.Popen, port: int, tmp: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{_logs(tmp)}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port} within 10 s:\n{_logs(tmp)}")


def _logs(tmp: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (tmp / "stderr.log", tmp / "error.log") if p.exists())


def _temp_dirs() -> list[tuple[str, str]]:
    """Temp path directives for the modules this nginx has (an unknown directive is an error)."""
    configure = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr if NGINX else ""
    dirs = [("client_body_temp_path", "client_body"), ("proxy_temp_path", "proxy")]
    dirs += [
        (f"{module}_temp_path", module)
        for module in ("fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in configure
    ]
    return dirs
