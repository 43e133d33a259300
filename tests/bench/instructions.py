"""Instructions per request, counted by valgrind's callgrind: a comparison the box's noise cannot blur.

    python -m tests.bench.instructions [--scenario v1/chat] [--seconds 20] [--connections 8] [--repeat 1] TARGET...

TARGET is `bare` (tests/bench/bare_proxy.py), `.` (this checkout's gateway) or the path of another
checkout (a `git worktree`). Each runs alone under `valgrind --tool=callgrind` with instrumentation off,
is warmed up by wrk, and then counted for `--seconds` of wrk traffic: the instructions the process ran
in user space divided by the requests wrk completed. On a shared two-core box, CPU time per request
swings by ±25 % from run to run; the same code and traffic give the same count to within about 1 %,
so a change of a few per cent is seen at once; `--repeat N` runs the targets in turn N times and adds
each one's median, for changes of one or two per cent. What it leaves out: time in the kernel (system calls
cost the same for every target), and cache misses.

Under valgrind a process runs some 50 times slower, while its timers keep wall-clock time: the usage
log's writer would write a batch of ~25 records every 0.5 s instead of ~1,000, and its per-batch
statements would weigh 40 times more per request than at full speed, more so for a target that
answers fewer requests. So the gateway counted here writes batches of 250 records, whenever that many
are queued (WRITER_BATCHING below); the timers of the heartbeat and the node poller still run on wall
time, a few thousand instructions per request at this pace.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.bench.canned import SCENARIOS, Scenario, canned_conf, capture_replies
from tests.bench.gateway_process import USER_KEY, drop_database, fresh_database, start_gateway
from tests.bench.processes import Service, python, start, wait_listening
from tests.bench.run import start_nginx
from tests.bench.wrk import run_wrk, write_script
from tests.support.ports import free_port

START_TIMEOUT = 600  # seconds: start-up under valgrind (migrations, imports) takes a minute or more
# Run in the gateway's process before `serve`: full batches only, as at full speed (see above).
WRITER_BATCHING = (
    "from proxy.request_log.writer import RequestLogWriter\n"
    "RequestLogWriter.__init__.__kwdefaults__.update(batch_size=250, flush_interval=60.0)"
)


def launcher(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _total(dump: Path) -> int:
    """The `totals:` line of a callgrind dump: every instruction counted since the counters were zeroed."""
    return next(
        int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines() if line.startswith("totals:")
    )


async def count(
    service: Service, out: Path, url: str, script: Path, connections: int, seconds: float
) -> tuple[int, int]:
    """(requests, instructions) for `seconds` of wrk traffic, after a warm-up that is not counted."""
    await run_wrk(url, script, connections=connections, seconds=3)
    pid = str(service.process.pid)
    _control("--zero", pid)
    _control("--instr=on", pid)
    result = await run_wrk(url, script, connections=connections, seconds=seconds)
    _control("--instr=off", pid)
    _control("--dump=counted", pid)
    dumps = sorted(out.parent.glob(f"{out.name}.{pid}*"), key=lambda p: p.stat().st_mtime)
    return result.requests, _total(dumps[-1])


async def main(args: argparse.Namespace) -> None:
    assert shutil.which("valgrind") and shutil.which("callgrind_control"), "apt-get install valgrind"
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    tmp = Path(tempfile.mkdtemp(prefix="ogw-instructions-"))
    canned = start_nginx("canned", tmp, canned_conf(tmp, port := free_port(), await capture_replies()), port)
    dsn = await fresh_database()
    script = write_script(tmp / "s.lua", scenario.body, {**scenario.headers, "Authorization": f"Bearer {USER_KEY}"})
    print(f"{scenario.name}, {args.connections} connections, {args.seconds:g} s counted per target\n")
    print("| target | requests counted | instructions per request |\n|---|---|---|")
    counts: dict[str, list[float]] = {target: [] for target in args.targets}
    try:
        await wait_listening(canned)
        for _ in range(args.repeat):
            for index, target in enumerate(args.targets):
                per_request = await _count_target(index, target, tmp, canned, dsn, scenario, script, args)
                counts[target].append(per_request)
        if args.repeat > 1:
            print("\n| target | median instructions per request | runs |\n|---|---|---|")
            for target, values in counts.items():
                runs = ", ".join(f"{v / 1000:,.1f}" for v in values)
                print(f"| {target} | {statistics.median(values) / 1000:,.1f} k | {runs} |")
    finally:
        canned.stop()
        await drop_database()


async def _count_target(
    index: int,
    target: str,
    tmp: Path,
    canned: Service,
    dsn: str,
    scenario: Scenario,
    script: Path,
    args: argparse.Namespace,
) -> float:
    out = tmp / f"target{index}.callgrind"
    if target == "bare":
        argv = python("tests.bench.bare_proxy", "--port", str(p := free_port()), "--upstream", canned.url)
        service = start("bare", [*launcher(out), *argv, "--uvloop"], tmp, p)
        await wait_listening(service, START_TIMEOUT)
    else:
        tree = None if target == "." else Path(target).resolve()
        service = await start_gateway(
            f"gateway{index}",
            tmp,
            free_port(),
            canned.url,
            dsn,
            tree=tree,
            launcher=launcher(out),
            preamble=WRITER_BATCHING,
            start_timeout=START_TIMEOUT,
        )
    try:
        requests, instructions = await count(
            service, out, service.url + scenario.path, script, args.connections, args.seconds
        )
    finally:
        service.stop()
    per_request = instructions / max(requests, 1)
    print(f"| {target} | {requests} | {per_request / 1000:,.1f} k |", flush=True)
    return per_request


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", help="bare, . (this checkout) or another checkout's path")
    parser.add_argument("--scenario", default="v1/chat", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="run the targets in turn this many times")
    asyncio.run(main(parser.parse_args()))
