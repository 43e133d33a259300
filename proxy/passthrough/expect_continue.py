"""`Expect: 100-continue` answered only once a request is accepted (RFC 9110 §10.1.1).

aiohttp's default expect handler writes `100 Continue` as soon as the route matches, before any
middleware: a client would upload its whole body for a request about to get 401, 429 or 413.
Here the route's expect handler writes nothing; the handler calls `send_continue` when it starts
reading the body, after auth, the key's limits and the declared size have passed.

Any other expectation is ignored, as RFC 9110 §10.1.1 allows ("MAY respond with 417"): aiohttp
answers one with a 417 from before the middleware chain (no request id, no usage row), and one
holding bytes that are not UTF-8 with a 500, since its message echoes the value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy

RequestFactory = Callable[..., web.BaseRequest]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _expects_continue(request: web.BaseRequest) -> bool:
    # Header values may hold any bytes (aiohttp decodes them with surrogateescape): compare only.
    return request.headers.get("Expect", "").strip().lower() == "100-continue"


async def defer_continue(request: web.Request) -> None:
    """The routes' expect handler: answer nothing yet (other expectations never get this far)."""


def ignoring_unknown_expectations(request_factory: RequestFactory) -> RequestFactory:
    """Wrap a web.Server request factory so a request arrives without an Expect other than 100-continue."""

    def make_request(message: Any, *args: Any, **kwargs: Any) -> web.BaseRequest:
        expect = message.headers.get("Expect")
        if expect is not None and expect.strip().lower() != "100-continue":
            headers = CIMultiDict((k, v) for k, v in message.headers.items() if k.lower() != "expect")
            raw = tuple((k, v) for k, v in message.raw_headers if k.lower() != b"expect")
            message = message._replace(headers=CIMultiDictProxy(headers), raw_headers=raw)
        return request_factory(message, *args, **kwargs)

    return make_request


async def send_continue(request: web.BaseRequest) -> None:
    """Invite the body the client is holding back, if it asked to be invited."""
    if request.version >= HttpVersion11 and _expects_continue(request):
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # not part of the response, as in aiohttp's own handler
