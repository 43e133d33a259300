"""GET /redoc: the same OpenAPI document as /docs, rendered by ReDoc, whose bundle ships in the wheel.

The bundle is the npm package's file, unchanged on disk; one URL in it is replaced as it is loaded:
the "API docs by Redocly" footer shows a logo from ReDoc's CDN, which would be the page's only request
to another origin. ReDoc styles itself with styled-components, which adds <style> elements at run time; rather than
allowing every inline style, each page gets a fresh CSP nonce that init.js hands to ReDoc
(its `nonce` option), which stamps it on those elements.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from proxy.console.assets import REDOC_FILES, content_type, path_of

PAGE_PATH = "/redoc"
_INIT = "init.js"
_FILES = {name.removeprefix("vendor/"): name for name in REDOC_FILES}
ASSET_PATHS = tuple(f"{PAGE_PATH}/{name}" for name in (*_FILES, _INIT))
# URLs relative to the page, so it also works behind a proxy that adds a path prefix.
_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ollama-gateway API</title><link rel="icon" href="data:,"></head>
<body><div id="redoc" data-nonce="{nonce}"></div>
<script src="redoc/redoc.standalone.js"></script>
<script src="redoc/init.js"></script>
</body>
</html>
"""
_INIT_JS = b"""var root = document.getElementById("redoc");
Redoc.init("openapi.json", { nonce: root.dataset.nonce, hideDownloadButton: false }, root);
"""
# Two <style> elements the bundle adds as it loads, before ReDoc has its nonce: perfect-scrollbar's
# stylesheet and an empty one, allowed by their SHA-256 (CSP Level 3, "hash-source"). A new bundle
# with other contents fails tests/console/test_console.py, which reports every CSP violation.
_STYLE_HASHES = (
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc=' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
)
# Search runs in a worker ReDoc builds from a blob: URL of its own code.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}' " + _STYLE_HASHES + "; "
    "img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


_BUNDLE = "redoc.standalone.js"
_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK = b"data:,"


def load_bundle() -> bytes:
    bundle = path_of(_FILES[_BUNDLE]).read_bytes()
    if _CDN_LOGO not in bundle:  # a newer ReDoc: look again for what it loads from elsewhere
        raise RuntimeError(f"{_BUNDLE} no longer names {_CDN_LOGO.decode()}; check it before serving it")
    return bundle.replace(_CDN_LOGO, _BLANK)


async def page(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    return web.Response(
        text=_PAGE.format(nonce=nonce),
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP.format(nonce=nonce), "Cache-Control": "no-store"},
    )


def setup_redoc_routes(app: web.Application) -> None:
    bundle = load_bundle()
    cached = {"Cache-Control": "public, max-age=86400"}

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["asset"]
        if name == _INIT:
            return web.Response(body=_INIT_JS, content_type="text/javascript")
        if name == _BUNDLE:
            return web.Response(body=bundle, content_type="text/javascript", headers=cached)
        if name not in _FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(path_of(_FILES[name]), headers={"Content-Type": content_type(name), **cached})

    app.router.add_get(PAGE_PATH, page)
    app.router.add_get(PAGE_PATH + "/{asset}", asset)
