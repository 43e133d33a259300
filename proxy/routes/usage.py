"""GET /api/usage: usage over time (per hour or per day) with breakdowns, for the console's charts.

The same rights as GET /api/stats: any key sees its own usage; an admin key every key's, or one
key's with ?key_id=. Read from the rollups only (request_log/usage_series.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from aiohttp import web

from proxy.errors import GatewayError, forbidden
from proxy.keys.format import API_KEY
from proxy.request_log.partitions import USAGE_HOURLY_DAYS
from proxy.request_log.usage_series import STEPS, SeriesQuery, fetch_series
from proxy.request_log.usage_series_sql import SPLITS
from proxy.routes.query_params import parse_moment, parse_uuid, refuse_unknown
from proxy.state import POOL

PATH = "/api/usage"
PARAMS = ("key_id", "since", "until", "step", "split")
DEFAULT_SPAN = timedelta(days=1)
HOURLY_UP_TO = timedelta(days=2)  # the default step: hours up to 2 days (48 points), days beyond (bench_usage_series)
MAX_HOURLY_SPAN = timedelta(days=USAGE_HOURLY_DAYS - 3)  # the hourly rollups are kept USAGE_HOURLY_DAYS
MAX_POINTS = 1000


def parse_series_query(params: Mapping[str, str], now: datetime) -> SeriesQuery:
    """Raises ValueError with a message for a 400 body."""
    refuse_unknown(params, PARAMS)
    until = parse_moment("until", params["until"])[0] if "until" in params else now
    since = parse_moment("since", params["since"])[0] if "since" in params else until - DEFAULT_SPAN
    if since >= until:
        raise ValueError("since must be before until")
    step = params.get("step") or ("hour" if until - since <= HOURLY_UP_TO else "day")
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    split = params.get("split", "model")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    since, until = _floor(since, step), _ceil(until, step)
    if step == "hour" and until - since > MAX_HOURLY_SPAN:
        raise ValueError(f"step=hour covers at most {MAX_HOURLY_SPAN.days} days; use step=day")
    if (until - since) / STEPS[step] > MAX_POINTS:
        raise ValueError(f"the range holds more than {MAX_POINTS} steps")
    key_id = parse_uuid("key_id", params["key_id"]) if "key_id" in params else None
    return SeriesQuery(since=since, until=until, step=step, split=split, key_id=key_id)


def _floor(moment: datetime, step: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if step == "day" else moment


def _ceil(moment: datetime, step: str) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + STEPS[step]


async def get_usage(request: web.Request) -> web.Response:
    key = request[API_KEY]
    try:
        query = parse_series_query(request.query, datetime.now(UTC))
    except (ValueError, OverflowError) as exc:
        raise GatewayError(400, str(exc) if isinstance(exc, ValueError) else "the range is out of bounds") from None
    if not key.is_admin:
        if query.key_id not in (None, key.id):
            raise forbidden("a user key sees only its own usage")
        query = SeriesQuery(query.since, query.until, query.step, query.split, key.id)
    return web.json_response(await fetch_series(request.app[POOL], query), headers={"Cache-Control": "no-store"})


def setup_usage_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_usage)
