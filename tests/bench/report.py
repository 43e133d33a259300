"""The benchmark's results as progress lines and Markdown tables (the README's "Benchmarks" section)."""

from __future__ import annotations

TARGETS = ("direct", "nginx", "bare", "gateway")


def http_line(row: dict) -> str:
    return (
        f"{row['scenario']:<16} c={row['connections']:<4} {row['target']:<8} {row['rps']:>7} req/s  "
        f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  cpu {row['cpu_us_per_request']} µs/req"
        + (
            f"  ERRORS {row['status_errors']}/{row['socket_errors']}"
            if row["status_errors"] or row["socket_errors"]
            else ""
        )
    )


def stream_line(row: dict) -> str:
    return (
        f"streams={row['streams']:<5} {row['target']:<8} lines {row['lines']:>7} in {row['seconds']} s  "
        f"delay p50 {row['p50_ms']} p99 {row['p99_ms']} ms  cpu {row['cpu_s_per_10k_lines']} s/10k lines  "
        f"errors {row['errors']}"
    )


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _added(row: dict | None, direct: dict | None) -> str:
    if not row or not direct:
        return "-"
    return f"{row['p50_ms'] - direct['p50_ms']:+.2f} / {row['p99_ms'] - direct['p99_ms']:+.2f}"


def _cores(row: dict) -> float:
    return row["rps"] * row["cpu_us_per_request"] / 1e6


def _workers(cell: dict, scenarios: list, loads: list, many: list) -> list[str]:
    """`serve --workers N` against one worker: throughput, and the CPU each had. On a box whose cores
    also run wrk, the upstream and PostgreSQL, N workers cannot have N cores; requests per CPU-second
    say whether they would scale on cores of their own."""
    out = []
    for target in many:
        out += [
            "",
            f"**{target} against one worker** (cores = requests/s × CPU per request: the CPU the "
            "gateway's processes had; per CPU-second = requests per second of their CPU)",
            "",
            "| request | conns | one worker | cores | ×N | cores | ×N / one worker | per CPU-second, ×N / one |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in scenarios:
            for c in [c for c in loads if c > 1]:
                one, n = cell.get((s, c, "gateway")), cell.get((s, c, target))
                if one and n:
                    out.append(
                        f"| {s} | {c} | {one['rps']} | {_cores(one):.2f} | {n['rps']} | {_cores(n):.2f} "
                        f"| **{_ratio(n['rps'], one['rps'])}** "
                        f"| {_ratio(one['cpu_us_per_request'], n['cpu_us_per_request'])} |"
                    )
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"nginx {m['nginx']}. {results['date']}. `{results['command']}` ({results.get('seconds', '?')} s)."
    ]
    http = results.get("http") or []
    if http:
        cell = {(r["scenario"], r["connections"], r["target"]): r for r in http}
        scenarios = list(dict.fromkeys(r["scenario"] for r in http))
        loads = sorted({r["connections"] for r in http})
        extra = list(dict.fromkeys(r["target"] for r in http if r["target"] not in TARGETS))  # ×N, before
        if 1 in loads:
            early = [t for t in extra if (scenarios[0], 1, t) in cell]  # `gateway ×N` has no row at 1 connection
            out += [
                "",
                "**Latency at one connection** (ms, p50 / p99; added = gateway − direct)",
                "",
                "| request | direct | nginx | bare aiohttp | gateway | gateway added |"
                + "".join(f" {t} | {t} added |" for t in early),
                "|---|---|---|---|---|---|" + "---|---|" * len(early),
            ]
            for s in scenarios:
                rows = [cell.get((s, 1, t)) for t in TARGETS]
                cells = [f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if r else "-" for r in rows]
                d, g = rows[0], rows[3]
                more = ""
                for t in early:
                    e = cell.get((s, 1, t))
                    more += f" {e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {_added(e, d)} |" if e else " - | - |"
                out.append(f"| {s} | " + " | ".join(cells) + f" | **{_added(g, d)}** |" + more)
        out += [
            "",
            "**Throughput** (requests/s; CPU = the process's CPU time per request)",
            "",
            "| request | conns | direct | nginx | bare aiohttp | gateway | gateway / bare | gateway / nginx "
            "| gateway CPU µs/req | bare CPU µs/req |"
            + "".join(f" {t} | {t} / bare | {t} CPU µs/req |" for t in extra),
            "|---|---|---|---|---|---|---|---|---|---|" + "---|---|---|" * len(extra),
        ]
        for s in scenarios:
            for c in [c for c in loads if c > 1]:
                rows = [cell.get((s, c, t)) for t in TARGETS]
                rps = [r["rps"] if r else None for r in rows]
                g, b = rows[3], rows[2]
                more = [cell.get((s, c, t)) for t in extra]
                out.append(
                    f"| {s} | {c} | "
                    + " | ".join(str(v or "-") for v in rps)
                    + f" | **{_ratio(rps[3], rps[2])}** | {_ratio(rps[3], rps[1])} | "
                    f"{g['cpu_us_per_request'] if g else '-'} | {b['cpu_us_per_request'] if b else '-'} |"
                    + "".join(
                        f" {m['rps'] if m else '-'} | {_ratio(m and m['rps'], rps[2])} | "
                        f"{m['cpu_us_per_request'] if m else '-'} |"
                        for m in more
                    )
                )
        out += _workers(cell, scenarios, loads, [t for t in extra if t.startswith("gateway ×")])
        errors = [r for r in http if r["status_errors"] or r["socket_errors"]]
        if errors:
            out.append(
                "\nErrors: "
                + "; ".join(
                    f"{r['scenario']} c={r['connections']} {r['target']}: "
                    f"{r['status_errors']} status, {r['socket_errors']} socket"
                    for r in errors
                )
            )
    streams = results.get("streams") or []
    if streams:
        s = results["settings"]
        nominal = s["lines"] * s["interval"] * s["repeat"]
        out += [
            "",
            f"**Concurrent streams** ({s['lines']} lines {s['interval'] * 1000:g} ms apart, "
            f"{s['repeat']} streams one after another per connection, so {nominal:g} s of streaming "
            "when the box keeps pace; delay = upstream write → client read, added = target − direct "
            "at the same count; CPU = the target's own, direct = the paced upstream's)",
            "",
            "| streams | target | lines | took s | delay p50 / p99 ms | added p50 / p99 ms "
            "| CPU s / 10k lines | CPU / bare's | errors |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        direct = {r["streams"]: r for r in streams if r["target"] == "direct"}
        bare = {r["streams"]: r for r in streams if r["target"] == "bare"}
        for r in streams:
            d = direct.get(r["streams"])
            added = (
                f"{r['p50_ms'] - d['p50_ms']:+.2f} / {r['p99_ms'] - d['p99_ms']:+.2f}"
                if d and r["target"] != "direct" and r["p50_ms"] is not None
                else "-"
            )
            bold = "**" if r["target"] == "gateway" else ""
            b = bare.get(r["streams"])
            relative = (
                _ratio(r["cpu_s_per_10k_lines"], b and b["cpu_s_per_10k_lines"]) if r["target"] != "direct" else "-"
            )
            out.append(
                f"| {r['streams']} | {r['target']} | {r['lines']} | {r['seconds']} "
                f"| {_ms(r['p50_ms'])} / {_ms(r['p99_ms'])} | {bold}{added}{bold} "
                f"| {r['cpu_s_per_10k_lines']} | {relative} | {r['errors']} |"
            )
    memory = results.get("memory") or []
    if memory:
        out += [
            "",
            f"**Memory per open stream** ({memory[0]['streams']} streams open at once in a fresh process; "
            "peak RSS over the RSS after a warm-up)",
            "",
            "| target | idle MB | peak MB | KB / open stream | errors |",
            "|---|---|---|---|---|",
        ]
        for r in memory:
            bold = "**" if r["target"] == "gateway" else ""
            out.append(
                f"| {r['target']} | {r['idle_mb']} | {r['peak_mb']} | {bold}{r['kb_per_stream']}{bold} "
                f"| {r['errors']} |"
            )
    if "usage_log" in results:
        u = results["usage_log"]
        out.append(
            f"\nUsage log: {u['rows_written']} rows for {u['gateway_requests_completed']} requests "
            "that wrk completed through the gateway (wrk's in-flight requests at each stop add rows)."
        )
    if "log_writer" in results:
        w = results["log_writer"]
        out.append(
            f"\nLog writer alone: {w['rows_per_s']} rows/s into PostgreSQL ({w['records']} records, COPY "
            f"batches of 1,000); enqueue {w['enqueue_us']} µs per record on the request path, "
            f"{w.get('gateway_cpu_us_per_row', '?')} µs of the gateway's CPU per row in the background."
        )
    return "\n".join(out)
