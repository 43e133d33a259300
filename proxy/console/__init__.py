"""The web pages the gateway serves itself: the console at /ui/ (static HTML, CSS and one script, with
uPlot for charts) and ReDoc's bundle for /redoc, all in the wheel: no build step, no CDN.

Only files; the routes that serve them are routes/console.py and routes/redoc.py. Why this shape, and
each vendored file's version, source and licence: docs/console.md.
"""
