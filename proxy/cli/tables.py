"""The usage summary of /api/stats as plain-text tables, for `ollama-gateway stats`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMNS = (
    ("requests", "REQUESTS"),
    ("errors", "ERRORS"),
    ("prompt_tokens", "PROMPT"),
    ("completion_tokens", "COMPLETION"),
    ("total_tokens", "TOTAL"),
    ("avg_response_time_ms", "AVG MS"),
    ("p50_response_time_ms", "P50 MS"),
    ("p95_response_time_ms", "P95 MS"),
    ("queued", "QUEUED"),
    ("p50_queue_ms", "P50 QUEUE MS"),
    ("p95_queue_ms", "P95 QUEUE MS"),
)


def format_stats(summary: dict[str, Any]) -> str:
    """Totals, then one row per model, per node, then per day; numbers right-aligned."""
    scope = f"key {summary['key_id']}" if summary.get("key_id") else "all keys"
    sections = [
        f"usage of {scope}, {summary['since']} to {summary['until']} (UTC days)",
        _table("", [("total", summary["totals"])]),
        _table("MODEL", [(m["model"] or "(none)", m) for m in summary["by_model"]]),
        _table("NODE", [(n["node"] or "(none)", n) for n in summary.get("by_node", ())]),
        _table("DAY", [(d["day"], d) for d in summary["by_day"]]),
    ]
    return "\n\n".join(sections)


def _table(first: str, rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    header = [first] + [title for _, title in COLUMNS]
    body = [[label] + [_cell(values[name]) for name, _ in COLUMNS] for label, values in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=False)]
        return "  ".join(cells).rstrip()

    return "\n".join(render(line) for line in [header, *body]) if body else f"{first or 'total'}: no usage"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"
