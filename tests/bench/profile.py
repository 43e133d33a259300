"""Profile the gateway under load: py-spy samples the `serve` subprocess while wrk drives it.

    python -m tests.bench.profile [--scenario "api/chat stream"] [--seconds 10] [--connections 32]
    python -m tests.bench.profile --streams 200 [--seconds 10]
    python -m tests.bench.profile --target bare [--scenario ...]   # the bare aiohttp proxy, for comparison
    python -m tests.bench.profile --tree ../before [--scenario ...]  # another checkout's gateway

Prints the functions with the most samples (own and cumulative) and leaves the collapsed stacks
(flamegraph.pl / speedscope input) in bench-results/profile-<target>-*.txt and the flame graph beside
them as .svg. Needs `pip install py-spy`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.canned import SCENARIOS, canned_conf, capture_replies
from tests.bench.gateway_process import USER_KEY, drop_database, fresh_database, start_gateway
from tests.bench.processes import REPO, python, start, wait_listening
from tests.bench.run import start_nginx
from tests.bench.wrk import run_wrk, write_script
from tests.support.ports import free_port


def summarize(stacks: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split("/")[-1] for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    lines = [f"{total} samples", "", "own %   function"]
    lines += [f"{n / total * 100:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "cum %   function"]
    lines += [f"{n / total * 100:5.1f}  {f}" for f, n in cumulative.most_common(top)]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    spy = shutil.which("py-spy")
    assert spy, "pip install py-spy"
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    tmp = Path(tempfile.mkdtemp(prefix="ogw-profile-"))
    if args.streams:
        canned = start(
            "paced", python("tests.bench.paced_upstream", "--port", str(p := free_port()), "--uvloop"), tmp, p
        )
    else:
        canned = start_nginx("canned", tmp, canned_conf(tmp, port := free_port(), await capture_replies()), port)
    dsn = await fresh_database()
    gateway = None
    try:
        await wait_listening(canned)
        if args.target == "bare":
            gateway = start(
                "bare",
                python("tests.bench.bare_proxy", "--port", str(p := free_port()), "--upstream", canned.url, "--uvloop"),
                tmp,
                p,
            )
            await wait_listening(gateway)
        else:
            gateway = await start_gateway("gateway", tmp, free_port(), canned.url, dsn, tree=args.tree)
        script = write_script(
            tmp / "profile.lua", scenario.body, {**scenario.headers, "Authorization": f"Bearer {USER_KEY}"}
        )
        name = f"streams-{args.streams}" if args.streams else scenario.name.replace("/", "_").replace(" ", "_")
        name = f"{args.target}{'-' + args.tree.name if args.tree else ''}-{name}"
        out = REPO / "bench-results" / f"profile-{name}.txt"
        out.parent.mkdir(exist_ok=True)
        # Two samplers on the same process at once: collapsed stacks for the summary below, and the
        # flame graph as an SVG to open in a browser (py-spy writes one format per recording).
        svg = out.with_suffix(".svg")
        spies = [
            await asyncio.create_subprocess_exec(
                spy,
                "record",
                "--format",
                fmt,
                "--rate",
                str(args.rate),
                "--duration",
                str(args.seconds),
                "--pid",
                str(gateway.process.pid),
                "--output",
                str(path),
                "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for fmt, path in (("raw", out), ("flamegraph", svg))
        ]
        if args.streams:  # streams of 50 lines 20 ms apart, back to back on each connection, for the duration
            client = await asyncio.create_subprocess_exec(
                *python(
                    "tests.bench.stream_client",
                    "--port",
                    str(gateway.port),
                    "--streams",
                    str(args.streams),
                    "--repeat",
                    str(args.seconds),
                    "--key",
                    USER_KEY,
                    "--uvloop",
                ),
                cwd=REPO,
                stdout=subprocess.PIPE,
            )
            print((await client.communicate())[0].decode())
        else:
            await run_wrk(gateway.url + scenario.path, script, connections=args.connections, seconds=2)
            result = await run_wrk(
                gateway.url + scenario.path, script, connections=args.connections, seconds=args.seconds
            )
            print(f"{scenario.name}: {result.rps:.0f} req/s under py-spy (sampling slows it)\n")
        for spy_process in spies:
            await spy_process.wait()
        print(summarize(out, args.top))
        print(f"\ncollapsed stacks: {out}\nflame graph: {svg}", file=sys.stderr)
    finally:
        if gateway:
            gateway.stop()
        canned.stop()
        await drop_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="api/chat stream", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--streams", type=int, default=0, help="profile this many concurrent paced streams instead of wrk on --scenario"
    )
    parser.add_argument("--target", default="gateway", choices=["gateway", "bare"], help="the process to profile")
    parser.add_argument("--tree", type=Path, default=None, help="profile another checkout's gateway (a worktree)")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    asyncio.run(main(parser.parse_args()))
