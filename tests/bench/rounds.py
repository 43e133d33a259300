"""One scenario, many short rounds, the targets alternating: medians and per-round ratios to the bare proxy.

    python -m tests.bench.rounds [--scenario v1/chat] [--rounds 8] [--seconds 4] [--connections 32] [TREE...]

Targets: the canned upstream itself (direct), the bare aiohttp proxy, this checkout's gateway and the
gateway of each TREE (a `git worktree` of another commit). On a shared box one 5-second row of
`tests.bench.run` can land on a quiet or a busy moment; here every target runs once per round, back to
back, so each round's ratio compares like with like, and the medians over the rounds say what a single
row cannot. At one connection (`--connections 1`) the table also gives each round's added latency: the
target's p50 less direct's in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from tests.bench.canned import SCENARIOS, canned_conf, capture_replies
from tests.bench.gateway_process import USER_KEY, drop_database, fresh_database, start_gateway
from tests.bench.processes import Service, python, start, wait_listening
from tests.bench.run import start_nginx
from tests.bench.wrk import run_wrk, write_script
from tests.support.ports import free_port


async def main(args: argparse.Namespace) -> None:
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    tmp = Path(tempfile.mkdtemp(prefix="ogw-rounds-"))
    canned = start_nginx("canned", tmp, canned_conf(tmp, port := free_port(), await capture_replies()), port)
    argv = python("tests.bench.bare_proxy", "--port", str(p := free_port()), "--upstream", canned.url, "--uvloop")
    targets: dict[str, Service] = {"direct": canned, "bare aiohttp": start("bare", argv, tmp, p)}
    dsn = await fresh_database()
    try:
        await wait_listening(canned)
        await wait_listening(targets["bare aiohttp"])
        targets["gateway"] = await start_gateway("gateway", tmp, free_port(), canned.url, dsn)
        for index, tree in enumerate(args.trees):
            targets[f"gateway {tree}"] = await start_gateway(
                f"gateway{index}", tmp, free_port(), canned.url, dsn, tree=Path(tree).resolve()
            )
        script = write_script(tmp / "s.lua", scenario.body, {**scenario.headers, "Authorization": f"Bearer {USER_KEY}"})
        for service in targets.values():
            await run_wrk(service.url + scenario.path, script, connections=8, seconds=1)  # warm-up
        rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, service in targets.items():
                cpu = service.cpu_seconds()
                result = await run_wrk(
                    service.url + scenario.path, script, connections=args.connections, seconds=args.seconds
                )
                cpu_us = (service.cpu_seconds() - cpu) / max(result.requests, 1) * 1e6
                rounds[name].append((result.rps, cpu_us, result.p50_ms))
        print(f"{scenario.name}, {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s\n")
        print(table(rounds, added=args.connections == 1))
    finally:
        for service in reversed(targets.values()):
            service.stop()
        await drop_database()


def table(rounds: dict[str, list[tuple[float, float, float]]], *, added: bool) -> str:
    """Medians, and each round's ratio to the bare proxy (and, with `added`, p50 over direct's), sorted."""
    bare, direct = rounds["bare aiohttp"], rounds["direct"]
    lines = [
        "| target | requests/s, median | CPU µs per request, median | p50 ms, median "
        "| target / bare per round (sorted) |" + (" added p50 ms per round (sorted), median |" if added else ""),
        "|---|---|---|---|---|" + ("---|" if added else ""),
    ]
    for name, measured in rounds.items():
        ratios = sorted(rps / bare_rps for (rps, *_), (bare_rps, *_) in zip(measured, bare, strict=True))
        row = (
            f"| {name} | {statistics.median(m[0] for m in measured):,.0f} "
            f"| {statistics.median(m[1] for m in measured):.0f} | {statistics.median(m[2] for m in measured):.3f} "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} |"
        )
        if added and name == "direct":
            row += " - |"
        elif added:
            over = sorted(m[2] - d[2] for m, d in zip(measured, direct, strict=True))
            row += f" {' '.join(f'{a:+.2f}' for a in over)}; **{statistics.median(over):+.3f}** |"
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", help="other checkouts whose gateway runs too")
    parser.add_argument("--scenario", default="v1/chat", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
