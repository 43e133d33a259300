"""GET /docs/ and the like: a public address asked for with a trailing slash is redirected to itself.

People and browsers add the slash. Without these routes the auth middleware would answer 401 to a
page that is public, and serving the page at /docs/ would break it: its asset URLs are relative, so
they would resolve under /docs/docs/.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web


def slashed(paths: Iterable[str]) -> tuple[str, ...]:
    """`/docs` -> `/docs/`, for every path that has a last segment to add a slash to."""
    return tuple(f"{path}/" for path in paths if not path.endswith("/"))


def setup_trailing_slash_redirects(app: web.Application, paths: Iterable[str]) -> None:
    """For each of `paths`, `path/` answers 308 to `path`, the query kept. The Location is relative (RFC 9110 §10.2.2),
    `../name` resolving to `path` (RFC 3986 §5.2), so it also works behind a proxy's path prefix."""
    for path in paths:
        if path.endswith("/"):
            continue
        target = "../" + path.rsplit("/", 1)[1]

        async def redirect(request: web.Request, target: str = target) -> web.StreamResponse:
            query = request.raw_path.partition("?")[2]
            raise web.HTTPPermanentRedirect(target + (f"?{query}" if query else ""))

        app.router.add_get(f"{path}/", redirect)
