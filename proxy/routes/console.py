"""GET /ui/: the web console, static files from the wheel (proxy/console/), public like /docs.

The page holds no data and no secret: it signs in with a key exchanged for a short-lived token and
then calls the same REST API as any client, so serving it without a key opens no new way in.
"""

from __future__ import annotations

from aiohttp import web

from proxy.console.assets import CONSOLE_FILES, content_type, path_of

PAGE_PATH = "/ui/"
ASSET_PATHS = tuple(PAGE_PATH + name for name in CONSOLE_FILES if name != "index.html")
# SECURITY: scripts and styles only from this origin, no inline code or style attributes, calls only to
# this origin (connect-src), never framed. uPlot sizes its canvases through the CSSOM, which CSP allows.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated, so an upgraded gateway serves its own script at once
}


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(path_of("index.html"), headers={**_HEADERS, "Content-Type": "text/html; charset=utf-8"})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name == "index.html" or name not in CONSOLE_FILES:  # a fixed list: no path ever reaches the disk
        raise web.HTTPNotFound()
    return web.FileResponse(path_of(name), headers={**_HEADERS, "Content-Type": content_type(name)})


async def to_page(request: web.Request) -> web.StreamResponse:
    # Relative, so a reverse proxy's path prefix is kept (RFC 9110 §10.2.2 allows a relative Location).
    raise web.HTTPMovedPermanently(location="ui/")


def setup_console_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_page)
    app.router.add_get(PAGE_PATH, page)
    app.router.add_get(PAGE_PATH + "{asset:.+}", asset)
