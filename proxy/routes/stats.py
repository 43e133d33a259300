"""GET /api/stats: usage totals, per model and per day, from the daily rollups.

Any key sees its own usage; an admin key sees every key's, or one key's with ?key_id=.
since/until (ISO dates or timestamps) select whole UTC days, the rollups' grain.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import GatewayError, forbidden
from proxy.keys.format import API_KEY
from proxy.request_log.stats import fetch_daily_usage, summarize
from proxy.routes.query_params import day_range, parse_uuid, refuse_unknown
from proxy.state import POOL
from proxy.values.utc_day import utc_today

PARAMS = ("key_id", "since", "until")


async def get_stats(request: web.Request) -> web.Response:
    key = request[API_KEY]
    params = request.query
    try:
        refuse_unknown(params, PARAMS)
        key_id = parse_uuid("key_id", params["key_id"]) if "key_id" in params else None
        since, until = day_range(params.get("since"), params.get("until"), utc_today())
    except ValueError as exc:
        raise GatewayError(400, str(exc)) from None
    if not key.is_admin:
        if key_id not in (None, key.id):
            raise forbidden("a user key sees only its own usage")
        key_id = key.id
    rows = await fetch_daily_usage(request.app[POOL], since, until, key_id)
    return web.json_response(
        {
            "key_id": str(key_id) if key_id else None,
            "since": since.isoformat(),
            "until": until.isoformat(),
            **summarize(rows),
        }
    )


def setup_stats_routes(app: web.Application) -> None:
    app.router.add_get("/api/stats", get_stats)
