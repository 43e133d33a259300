"""Calls per request: cProfile inside the `serve` process while wrk drives it.

    python -m tests.bench.calls [--scenario v1/chat] [--seconds 5] [--connections 32] [--top 40] [--tree PATH]

py-spy (tests/bench/profile.py) says where the time goes; this says how often each function runs per
request, which is where a repeated lookup or a conversion done twice shows up. cProfile's own cost per
call inflates every time it reports, small functions most: compare the counts, and the times only with
each other. A coroutine counts once per resumption: a handler that awaits once shows two calls. The
profiler starts after a warm-up (SIGUSR1) and stops before the process does (SIGUSR2), so start-up and
shutdown are not counted. The stats are left in bench-results/calls-<scenario>.prof.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import tempfile
from pathlib import Path

from tests.bench.canned import SCENARIOS, canned_conf, capture_replies
from tests.bench.gateway_process import USER_KEY, drop_database, fresh_database, start_gateway
from tests.bench.processes import REPO, wait_listening
from tests.bench.run import start_nginx
from tests.bench.wrk import run_wrk, write_script
from tests.support.ports import free_port

# Run in the gateway's process before `serve`: SIGUSR1 starts the profiler, SIGUSR2 stops it and writes the stats.
_PREAMBLE = """
import cProfile, signal
_profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: _profile.enable())
def _dump(*_):
    _profile.disable()
    _profile.dump_stats({out!r})
signal.signal(signal.SIGUSR2, _dump)
"""


def per_request(stats_file: Path, requests: int, top: int) -> str:
    """The functions called most often per request, then those with the most own time per request."""
    rows = []
    for (file, line, function), (_, calls, own, cumulative, _) in pstats.Stats(str(stats_file)).stats.items():
        where = file.split("site-packages/")[-1].removeprefix(str(REPO) + "/")
        rows.append((calls / requests, own / requests * 1e6, cumulative / requests * 1e6, f"{where}:{line} {function}"))
    header = "| calls | own µs | cumulative µs | function |\n|---|---|---|---|"

    def table(ordered: list[tuple[float, float, float, str]]) -> str:
        return "\n".join(f"| {c:.2f} | {o:.2f} | {cu:.2f} | `{name}` |" for c, o, cu, name in ordered[:top])

    return (
        f"Most calls per request\n\n{header}\n{table(sorted(rows, reverse=True))}\n\n"
        f"Most own time per request (cProfile's)\n\n{header}\n{table(sorted(rows, key=lambda r: -r[1]))}"
    )


async def main(args: argparse.Namespace) -> None:
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    tmp = Path(tempfile.mkdtemp(prefix="ogw-calls-"))
    out = REPO / "bench-results" / f"calls-{scenario.name.replace('/', '_').replace(' ', '_')}.prof"
    out.parent.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    canned = start_nginx("canned", tmp, canned_conf(tmp, port := free_port(), await capture_replies()), port)
    dsn = await fresh_database()
    gateway = None
    try:
        await wait_listening(canned)
        gateway = await start_gateway(
            "gateway", tmp, free_port(), canned.url, dsn, tree=args.tree, preamble=_PREAMBLE.format(out=str(out))
        )
        script = write_script(
            tmp / "calls.lua", scenario.body, {**scenario.headers, "Authorization": f"Bearer {USER_KEY}"}
        )
        url = gateway.url + scenario.path
        await run_wrk(url, script, connections=args.connections, seconds=2)  # warm-up
        os.kill(gateway.process.pid, signal.SIGUSR1)
        result = await run_wrk(url, script, connections=args.connections, seconds=args.seconds)
        os.kill(gateway.process.pid, signal.SIGUSR2)
        for _ in range(100):  # the stats are written by the gateway's signal handler
            if out.exists():
                break
            await asyncio.sleep(0.1)
        # wrk's requests still in flight at its stop were profiled too: a fraction of one per connection.
        print(f"{scenario.name}, {args.connections} connections: {result.requests} requests profiled\n")
        print(per_request(out, max(result.requests, 1), args.top))
    finally:
        if gateway:
            gateway.stop()
        canned.stop()
        await drop_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="v1/chat", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--tree", type=Path, default=None, help="another checkout's gateway (a worktree)")
    asyncio.run(main(parser.parse_args()))
