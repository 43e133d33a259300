"""GET /api/logs (admin): recent request_log rows, newest first, filtered and paged by an opaque cursor."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from proxy.errors import GatewayError
from proxy.request_log.query import LogFilter, fetch_logs, row_to_json
from proxy.routes.access import require_admin
from proxy.routes.query_params import (
    decode_cursor,
    encode_cursor,
    parse_int,
    parse_text,
    parse_uuid,
    refuse_unknown,
    time_range,
)
from proxy.state import POOL

PARAMS = ("key_id", "model", "status", "since", "until", "limit", "cursor")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def _filter(params: Mapping[str, str]) -> tuple[LogFilter, int]:
    refuse_unknown(params, PARAMS)
    since, until = time_range(params.get("since"), params.get("until"))
    where = LogFilter(
        key_id=parse_uuid("key_id", params["key_id"]) if "key_id" in params else None,
        model=parse_text("model", params["model"]) if "model" in params else None,
        status=parse_int("status", params["status"], 100, 599) if "status" in params else None,
        since=since,
        until=until,
        after=decode_cursor(params["cursor"]) if "cursor" in params else None,
    )
    limit = parse_int("limit", params["limit"], 1, MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT
    return where, limit


async def get_logs(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        where, limit = _filter(request.query)
    except ValueError as exc:
        raise GatewayError(400, str(exc)) from None
    rows, more = await fetch_logs(request.app[POOL], where, limit)
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return web.json_response({"logs": [row_to_json(row) for row in rows], "next_cursor": cursor})


def setup_log_routes(app: web.Application) -> None:
    app.router.add_get("/api/logs", get_logs)
