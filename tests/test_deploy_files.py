"""Dockerfile, docker-compose.yml and nginx.conf say what the README promises (no Docker engine here)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import subprocess
import sys

import pytest
import yaml

from proxy.settings import parse_setting
from tests.support.factories import make_settings, start_gateway
from tests.support.nginx_process import NGINX, NGINX_CONF, REPO, SKIP_REASON, command, render_conf
from tests.support.ports import free_port

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


INSTRUCTIONS = _instructions(DOCKERFILE)


def test_compose_has_the_four_services_with_images_pinned_to_exact_versions():
    assert set(SERVICES) == {"postgres", "ollama", "gateway", "nginx"}
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    assert images.keys() == {"postgres", "ollama", "nginx"}
    assert images["postgres"].startswith("postgres:16.") and images["ollama"].startswith("ollama/ollama:")
    for image in images.values():
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?", image), f"{image} is not pinned to a version"


def test_the_bundled_ollama_is_optional_and_the_gateway_can_use_another():
    assert SERVICES["ollama"]["profiles"] == ["ollama"]
    gateway = SERVICES["gateway"]
    assert "ollama" not in gateway.get("depends_on", {})  # or `up` without the profile would fail
    assert gateway["environment"]["OLLAMA_BASE_URL"] == "${OLLAMA_BASE_URL:-http://ollama:11434}"
    assert "host.docker.internal:host-gateway" in gateway["extra_hosts"]
    # The .env copied from .env.example must not point the container at its own loopback.
    example = (REPO / ".env.example").read_text()
    assert not re.search(r"^OLLAMA_BASE_URL=", example, re.MULTILINE)


def test_the_compose_file_tells_how_to_pull_a_model_into_the_bundled_ollama():
    text = (REPO / "docker-compose.yml").read_text()
    assert "docker compose --profile ollama up" in text
    assert re.search(r"docker compose exec ollama ollama pull \S+", text)


def test_secret_key_is_required_by_compose():
    value = SERVICES["gateway"]["environment"]["SECRET_KEY"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", value), value


def test_postgres_is_checked_and_the_gateway_waits_for_it():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert any(volume.startswith("postgres-data:") for volume in SERVICES["postgres"]["volumes"])
    assert SERVICES["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_only_nginx_publishes_a_port():
    assert "ports" not in SERVICES["gateway"] and "ports" not in SERVICES["ollama"]
    assert "ports" not in SERVICES["postgres"]
    assert [str(port).rsplit(":", 1)[-1] for port in SERVICES["nginx"]["ports"]] == ["80"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]


def test_gateway_settings_point_inside_the_compose_network():
    gateway = SERVICES["gateway"]
    assert gateway["build"] == "." and gateway["env_file"] == ".env"
    env = gateway["environment"]
    assert re.fullmatch(
        r"postgresql://gateway:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/gateway", env["DATABASE_URL"]
    )
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    trusted = parse_setting("TRUSTED_PROXIES", env["TRUSTED_PROXIES"])
    [subnet] = [ipaddress.ip_network(c["subnet"]) for c in COMPOSE["networks"]["default"]["ipam"]["config"]]
    assert any(subnet.subnet_of(network) for network in trusted if network.version == subnet.version)


def test_no_secret_is_written_into_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    for variable in ("DEMO_ADMIN_KEY", "DEMO_USER_KEY"):
        assert f"{variable}:" not in text and f"{variable}=" not in text
    # SECRET_KEY appears only as a reference to .env.
    assert re.findall(r"SECRET_KEY[:=]\s*(\S+)", text) == [SERVICES["gateway"]["environment"]["SECRET_KEY"].split()[0]]


def test_dockerfile_caches_dependencies_and_runs_unprivileged():
    froms = [args for kind, args in INSTRUCTIONS if kind == "FROM"]
    assert all(re.fullmatch(r"python:3\.12\.\d+-slim", image.split()[0]) for image in froms)  # pinned
    steps = [f"{kind} {args}" for kind, args in INSTRUCTIONS]
    # Dependencies (from pyproject.toml alone) are installed before the package arrives, so a
    # code change rebuilds only the last layers.
    installs_deps = next(i for i, step in enumerate(steps) if "pip install" in step and "requirements" in step)
    assert steps[installs_deps - 1].startswith("COPY pyproject.toml")
    assert installs_deps < steps.index("COPY --from=build /wheels /tmp/wheels")
    assert "COPY sql ./sql" in steps  # proxy/sql is a symlink to it
    assert not any("embedded" in step for step in steps if step.startswith("RUN"))
    [user] = [args for kind, args in INSTRUCTIONS if kind == "USER"]
    assert user not in ("root", "0")
    env = " ".join(args for kind, args in INSTRUCTIONS if kind == "ENV")
    assert "GATEWAY_HOST=0.0.0.0" in env and "GATEWAY_PORT=8000" in env
    assert json.loads(dict(INSTRUCTIONS)["ENTRYPOINT"]) == ["ollama-gateway"]
    assert json.loads(dict(INSTRUCTIONS)["CMD"]) == ["serve"]


def _healthcheck_argv() -> list[str]:
    [args] = [args for kind, args in INSTRUCTIONS if kind == "HEALTHCHECK"]
    return json.loads(args.split(" CMD ", 1)[1])


async def test_the_healthcheck_command_passes_on_a_live_gateway_and_fails_without_one(aiohttp_server, database_url, db):
    """The HEALTHCHECK's own command line, run here with this Python instead of the image's."""
    argv = _healthcheck_argv()
    assert argv[0] == "python"

    async def check(port: int) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv[1:],
            env={"GATEWAY_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return await process.wait()

    gateway = await start_gateway(aiohttp_server, make_settings(database_url))
    assert await check(gateway.server.port) == 0
    assert await check(free_port()) != 0


def test_nginx_conf_streams_unbuffered_and_forwards_the_client():
    text = NGINX_CONF.read_text()
    directives = {line.strip().rstrip(";") for line in text.splitlines() if not line.strip().startswith("#")}
    for directive in (
        "proxy_buffering off",
        "proxy_request_buffering off",
        "proxy_http_version 1.1",
        'proxy_set_header Connection ""',
        "proxy_set_header Host $host",
        "proxy_set_header X-Real-IP $remote_addr",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
        "proxy_read_timeout 3600s",
        "proxy_send_timeout 3600s",
        "client_max_body_size 0",
        "server gateway:8000",
        "keepalive 64",
        "listen 80",
    ):
        assert directive in directives, directive
    # The default (off) must stay: nginx then closes the upstream when the client leaves.
    assert "proxy_ignore_client_abort on" not in directives


@pytest.mark.skipif(NGINX is None, reason=SKIP_REASON)
def test_nginx_accepts_the_conf(tmp_path):
    conf = render_conf(tmp_path, upstream="127.0.0.1:8000", listen=f"127.0.0.1:{free_port()}")
    result = subprocess.run(command(tmp_path, conf, "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
