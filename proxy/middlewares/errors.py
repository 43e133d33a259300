"""Turns every rejection into JSON in the route family's error shape; no traceback reaches a client."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import error_response
from ..gateway_error import GatewayError
from ..typedefs import RECORD

log = logging.getLogger(__name__)


def errors_middleware() -> Middleware:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            _note(request, exc.message)
            return error_response(request, exc.status, exc.message, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects and the like are answers, not errors
            # aiohttp's own rejections: unknown route (404), wrong method (405), body too large (413).
            message = exc.reason.lower() if exc.status != 404 else f"no route for {request.method} {request.path}"
            _note(request, message)
            return error_response(request, exc.status, message, _allow_header(exc))
        except Exception:
            record = request.get(RECORD)
            log.exception("unhandled error in request %s", record.id if record else "?")
            _note(request, "internal error")
            return error_response(request, 500, "internal gateway error")

    return errors


def _note(request: web.Request, message: str) -> None:
    record = request.get(RECORD)
    if record is not None and record.error is None:
        record.error = message


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
