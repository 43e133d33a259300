"""GET /openapi.json and GET /docs: the API document, rendered by Swagger UI served from this process.

Swagger UI's files come from the swagger-ui-py wheel (no CDN: the page works offline and behind a
firewall), and the page's Content-Security-Policy lets it load nothing from anywhere else.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from aiohttp import web

from proxy.routes.openapi import build_document

SPEC_PATH = "/openapi.json"
PAGE_PATH = "/docs"
# URLs relative to the page, so the docs also work behind a proxy that adds a path prefix.
_PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ollama-gateway API</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""
# validatorUrl: null, or Swagger UI would send the document to validator.swagger.io.
_INIT = b"""window.ui = SwaggerUIBundle({
  url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  tryItOutEnabled: false, persistAuthorization: false
});
"""
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_VENDORED = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}
ASSET_PATHS = tuple(f"{PAGE_PATH}/{name}" for name in (*_VENDORED, "init.js"))


def swagger_ui_dir() -> Path:
    """The static files of the swagger-ui-py wheel, found without importing it (it pulls in Jinja)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; it is a dependency: reinstall ollama-gateway")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def setup_docs_routes(app: web.Application) -> None:
    document = json.dumps(build_document()).encode()
    static = swagger_ui_dir()

    async def spec(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            body=_PAGE, content_type="text/html", charset="utf-8", headers={"Content-Security-Policy": _CSP}
        )

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["asset"]
        if name == "init.js":
            return web.Response(body=_INIT, content_type="text/javascript")
        if name not in _VENDORED:
            raise web.HTTPNotFound()
        return web.FileResponse(
            static / name, headers={"Content-Type": _VENDORED[name], "Cache-Control": "public, max-age=86400"}
        )

    app.router.add_get(SPEC_PATH, spec)
    app.router.add_get(PAGE_PATH, page)
    app.router.add_get(PAGE_PATH + "/{asset}", asset)
