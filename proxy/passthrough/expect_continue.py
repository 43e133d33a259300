"""`Expect: 100-continue` answered only once a request is accepted (RFC 9110 §10.1.1).

aiohttp's default expect handler writes `100 Continue` as soon as the route matches, before any
middleware: a client would upload its whole body for a request about to get 401, 429 or 413.
Here the route's expect handler writes nothing; the handler calls `send_continue` when it starts
reading the body, after auth, the key's limits and the declared size have passed.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _expects_continue(request: web.BaseRequest) -> bool:
    # Header values may hold any bytes (aiohttp decodes them with surrogateescape): compare only.
    return request.headers.get("Expect", "").strip().lower() == "100-continue"


async def defer_continue(request: web.Request) -> None:
    """The routes' expect handler: refuse other expectations (417, as aiohttp does), answer none yet."""
    if request.version >= HttpVersion11 and not _expects_continue(request):
        # Not aiohttp's text: it echoes the value, and a value with undecodable bytes cannot be encoded.
        raise web.HTTPExpectationFailed(text="only 100-continue is supported")


async def send_continue(request: web.BaseRequest) -> None:
    """Invite the body the client is holding back, if it asked to be invited."""
    if request.version >= HttpVersion11 and _expects_continue(request):
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # not part of the response, as in aiohttp's own handler
