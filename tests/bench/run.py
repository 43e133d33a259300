"""The benchmark suite: the same traffic direct, through nginx, a bare aiohttp proxy and the gateway.

    python -m tests.bench.run [--quick] [--out bench-results/latest.json]

Starts everything itself on loopback ports (see docs/benchmarks.md), prints Markdown tables and
writes JSON. Needs nginx, wrk and a PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres), on which it creates and drops its own databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.bench import bench_log_writer, report
from tests.bench.canned import SCENARIOS, canned_conf, capture_replies, proxy_conf
from tests.bench.gateway_process import USER_KEY, drop_database, fresh_database, logged_rows, start_gateway
from tests.bench.processes import REPO, PeakRss, Service, python, start, wait_listening
from tests.bench.wrk import run_wrk, write_script
from tests.support.ports import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TARGETS = ("direct", "nginx", "bare", "gateway")
BEFORE = "gateway (before)"


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def start_nginx(name: str, tmp: Path, conf_text: str, port: int) -> Service:
    conf = tmp / f"{name}.conf"
    conf.write_text(conf_text)
    return start(name, [NGINX, "-p", f"{tmp}/", "-c", str(conf)], tmp, port)


async def http_phase(args: argparse.Namespace, tmp: Path, dsn: str, results: dict) -> None:
    replies = await capture_replies()
    canned = start_nginx("canned", tmp, canned_conf(tmp, port := free_port(), replies), port)
    nginx_port = free_port()
    proxy = start_nginx("proxy", tmp, proxy_conf(tmp, [(nginx_port, canned.port)]), nginx_port)
    bare = start(
        "bare",
        python("tests.bench.bare_proxy", "--port", str(p := free_port()), "--upstream", canned.url, *args.bare_loop),
        tmp,
        p,
    )
    services = [canned, proxy, bare]
    try:
        for service in services:
            await wait_listening(service)
        gateway = await start_gateway("gateway", tmp, free_port(), canned.url, dsn, workers=args.workers)
        services.append(gateway)
        targets = dict(zip(TARGETS, (canned, proxy, bare, gateway), strict=False))
        if args.compare_workers > 1:  # serve --workers N: throughput rows only
            services.append(
                many := await start_gateway(
                    "gateway-workers", tmp, free_port(), canned.url, dsn, workers=args.compare_workers
                )
            )
            targets[f"gateway ×{args.compare_workers}"] = many
        if args.before:  # another checkout's gateway, same settings: before and after in one run
            services.append(
                before := await start_gateway("gateway-before", tmp, free_port(), canned.url, dsn, tree=args.before)
            )
            targets[BEFORE] = before
        sent = 0
        for scenario in SCENARIOS:
            script = write_script(
                tmp / f"{scenario.name.replace('/', '_').replace(' ', '_')}.lua",
                scenario.body,
                {**scenario.headers, "Authorization": f"Bearer {USER_KEY}"},
            )
            for name, service in targets.items():  # warm-up, and a check that every target answers 200
                warm = await run_wrk(service.url + scenario.path, script, connections=8, seconds=1)
                assert warm.status_errors == 0 and warm.requests > 0, (name, scenario.name, warm)
                sent += warm.requests if name.startswith("gateway") else 0
            for connections in args.connections:
                # Side by side: the targets of one row run back to back, so the box's load is alike.
                for name, service in targets.items():
                    if connections == 1 and name.startswith("gateway ×"):
                        continue
                    cpu = service.cpu_seconds()
                    result = await run_wrk(
                        service.url + scenario.path, script, connections=connections, seconds=args.seconds
                    )
                    cpu = service.cpu_seconds() - cpu
                    sent += result.requests if name.startswith("gateway") else 0
                    row = {
                        "scenario": scenario.name,
                        "connections": connections,
                        "target": name,
                        "rps": round(result.rps),
                        "p50_ms": result.p50_ms,
                        "p90_ms": result.p90_ms,
                        "p99_ms": result.p99_ms,
                        "cpu_us_per_request": round(cpu / max(result.requests, 1) * 1e6, 1),
                        "status_errors": result.status_errors,
                        "socket_errors": result.socket_errors,
                    }
                    results["http"].append(row)
                    print(report.http_line(row), flush=True)
        for service in services[3:]:  # the gateways: drained, so every row is in
            service.stop()
        results["usage_log"] = {"gateway_requests_completed": sent, "rows_written": await logged_rows(dsn)}
    finally:
        for service in reversed(services):
            service.stop()


async def _stream_targets(
    tmp: Path, dsn: str, args: argparse.Namespace, suffix: str, interval: float
) -> dict[str, Service]:
    """The paced upstream, and nginx, the bare proxy and the gateway in front of it: direct first."""
    paced = start(
        f"paced{suffix}",
        python(
            "tests.bench.paced_upstream",
            "--port",
            str(p := free_port()),
            "--lines",
            str(args.lines),
            "--interval",
            str(interval),
            *args.helper_loop,
        ),
        tmp,
        p,
    )
    nginx_port = free_port()
    proxy = start_nginx(f"proxy{suffix}", tmp, proxy_conf(tmp, [(nginx_port, paced.port)]), nginx_port)
    bare = start(
        f"bare{suffix}",
        python("tests.bench.bare_proxy", "--port", str(p := free_port()), "--upstream", paced.url, *args.bare_loop),
        tmp,
        p,
    )
    targets = {"direct": paced, "nginx": proxy, "bare": bare}
    try:
        for service in targets.values():
            await wait_listening(service)
        targets["gateway"] = await start_gateway(
            f"gateway{suffix}", tmp, free_port(), paced.url, dsn, workers=args.workers
        )
        if args.before:
            targets[BEFORE] = await start_gateway(
                f"gateway-before{suffix}", tmp, free_port(), paced.url, dsn, tree=args.before
            )
    except BaseException:
        _stop(targets)
        raise
    return targets


def _stop(targets: dict[str, Service]) -> None:
    for service in reversed(list(targets.values())):
        service.stop()


async def stream_phase(args: argparse.Namespace, tmp: Path, dsn: str, results: dict) -> None:
    """Added delay per line and CPU per line at each stream count, with every target side by side."""
    targets = await _stream_targets(tmp, dsn, args, "-streams", args.interval)
    try:
        for name, service in targets.items():  # warm-up: connection pools, first allocations
            await _streams(service, 20, 1, args, name.startswith("gateway"))
        for count in args.streams:
            for name, service in targets.items():
                cpu = service.cpu_seconds()
                out = await _streams(service, count, args.repeat, args, name.startswith("gateway"))
                cpu = service.cpu_seconds() - cpu
                row = {
                    "streams": count,
                    "target": name,
                    **out,
                    "cpu_s_per_10k_lines": round(cpu / max(out["lines"], 1) * 10_000, 3),
                }
                results["streams"].append(row)
                print(report.stream_line(row), flush=True)
    finally:
        _stop(targets)


async def memory_phase(args: argparse.Namespace, tmp: Path, dsn: str, results: dict) -> None:
    """Resident memory per open stream: fresh processes, every stream open at once (5 s streams,
    opened within 1 s), peak RSS over the RSS after a small warm-up, divided by the streams."""
    count = max(args.streams)
    targets = await _stream_targets(tmp, dsn, args, "-memory", 0.1)
    try:
        for name, service in targets.items():
            if name == "direct":
                continue
            await _streams(service, 10, 1, args, name.startswith("gateway"))
            idle = service.rss()
            async with PeakRss(service) as peak:
                out = await _streams(service, count, 1, args, name.startswith("gateway"))
            row = {
                "streams": count,
                "target": name,
                "errors": out["errors"],
                "idle_mb": round(idle / 2**20, 1),
                "peak_mb": round(peak.peak / 2**20, 1),
                "kb_per_stream": round(max(0, peak.peak - idle) / count / 1024, 1),
            }
            results["memory"].append(row)
            print(f"memory: {row}", flush=True)
    finally:
        _stop(targets)


async def _streams(service: Service, count: int, repeat: int, args: argparse.Namespace, keyed: bool) -> dict:
    argv = python(
        "tests.bench.stream_client",
        "--port",
        str(service.port),
        "--streams",
        str(count),
        "--repeat",
        str(repeat),
        "--ramp",
        str(min(1.0, count / 500)),
        *args.helper_loop,
        *(["--key", USER_KEY] if keyed else []),
    )
    process = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    return json.loads(out)


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    import aiohttp

    return {
        "cpu": model,
        "cores": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "nginx": subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1],
    }


async def main(args: argparse.Namespace) -> dict:
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m tests.bench.run"
        + (" --quick" if args.quick else "")
        + (" --before …" if args.before else ""),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
        "http": [],
        "streams": [],
        "memory": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="ogw-bench-"))
    dsn = await fresh_database()
    started = time.monotonic()
    try:
        if "http" in args.phases:
            await http_phase(args, tmp, dsn, results)
        if "streams" in args.phases:
            await stream_phase(args, tmp, dsn, results)
        if "memory" in args.phases:
            await memory_phase(args, tmp, dsn, results)
        if "writer" in args.phases:
            results["log_writer"] = await bench_log_writer.measure(args.writer_records)
            print(f"log writer: {results['log_writer']}", flush=True)
    finally:
        await drop_database()
    results["seconds"] = round(time.monotonic() - started)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, fewer streams (about a minute)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "latest.json")
    parser.add_argument(
        "--phases", default="http,streams,memory,writer", help="comma-separated: http,streams,memory,writer"
    )
    parser.add_argument("--workers", type=int, default=1, help="the gateway's worker processes (serve --workers)")
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=None,
        help="also measure throughput with serve --workers N (default: 2; 0 with --quick)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also run the gateway of another checkout (e.g. a `git worktree` of an older commit), side by side",
    )
    parser.add_argument(
        "--bare-asyncio", action="store_true", help="run the bare proxy on asyncio's loop even when uvloop is installed"
    )
    args = parser.parse_args(argv)
    args.phases = args.phases.split(",")
    args.seconds = 2.0 if args.quick else 5.0
    args.connections = (1, 32) if args.quick else (1, 32, 128)
    args.streams = (100, 250) if args.quick else (100, 250, 500, 1000)
    args.repeat = 2 if args.quick else 3
    args.lines, args.interval = 50, 0.02
    args.writer_records = 20_000 if args.quick else 100_000
    if args.compare_workers is None:
        args.compare_workers = 0 if args.quick else 2
    # The bare proxy runs on the loop the gateway's `serve` uses: uvloop when it is installed.
    args.bare_loop = ["--uvloop"] if _has_uvloop() and not args.bare_asyncio else []
    args.helper_loop = ["--uvloop"] if _has_uvloop() else []  # load generators: as cheap as they can be
    return args


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    print()
    print(report.markdown(outcome))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(f"\nwritten to {arguments.out}", file=sys.stderr)
