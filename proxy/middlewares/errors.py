"""Turns every rejection into JSON in the route family's error shape; no traceback reaches a client."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.db.errors import DatabaseUnavailable
from proxy.errors import GatewayError, error_response
from proxy.request_log.record import request_id as _request_id

# A response whose headers are out: the errors middleware cuts it rather than answer twice.
STARTED_RESPONSE = web.RequestKey("started_response", web.StreamResponse)
# The message of the error answer given, or of the cut: the usage record's `error`.
ERROR_MESSAGE = web.RequestKey("error_message", str)

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable; try again shortly"
DATABASE_RETRY_AFTER = "5"


def errors_middleware() -> Middleware:
    """Renders GatewayError, aiohttp's HTTP errors and anything unexpected as one JSON answer.

    A lost database is a 503 with Retry-After, not a 500. Once a response has started (a stream's
    headers are out), no second answer can follow: the connection is cut, so the client sees a
    truncated body rather than a clean end, or an error response inside the body.
    """

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            return _answer(request, exc.status, exc.message, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects and the like are answers, not errors
            # aiohttp's own rejections: unknown route (404), wrong method (405), body too large (413).
            message = exc.reason.lower() if exc.status != 404 else f"no route for {request.method} {request.path}"
            return _answer(request, exc.status, message, _allow_header(exc))
        except Exception as exc:
            request_id = _request_id(request)
            if isinstance(exc, DatabaseUnavailable):
                # An outage, not a bug: one line, no traceback (the writer and key cache say more).
                log.warning("request %s: database unavailable (%s)", request_id, exc)
                return _answer(request, 503, DATABASE_UNAVAILABLE, {"Retry-After": DATABASE_RETRY_AFTER})
            log.exception("unhandled error in request %s", request_id)
            return _answer(request, 500, "internal gateway error", noted="internal error")

    return errors


def remember_started_response(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the response whose headers are leaving, should its handler fail later."""
    request[STARTED_RESPONSE] = response


def _answer(
    request: web.Request, status: int, message: str, headers: dict[str, str] | None = None, *, noted: str | None = None
) -> web.StreamResponse:
    """The error answer; or, when a response is already under way, that response with the connection cut.

    `noted` is what the usage record keeps, when it differs from what the client is told.
    """
    noted = noted or message
    request[ERROR_MESSAGE] = noted
    if started := _started(request):
        return _cut(request, started, noted)
    return error_response(request, status, message, headers)


def _started(request: web.Request) -> web.StreamResponse | None:
    """The response already under way, if any: a handler prepared it before it raised."""
    response = request.get(STARTED_RESPONSE)
    return response if response is not None and response.prepared else None


def _cut(request: web.Request, response: web.StreamResponse, message: str) -> web.StreamResponse:
    """Abort the connection mid-body and hand back the started response.

    aiohttp's own fallback would write a second status line into the body (an HTTPException) or
    log a traceback and send a text/plain 500; with the transport gone, finishing the returned
    response fails quietly and the client sees a truncated body, never a clean end.
    """
    log.warning("request %s: %s after the response started; cutting the connection", _request_id(request), message)
    if request.transport is not None:
        request.transport.abort()
    return response


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
