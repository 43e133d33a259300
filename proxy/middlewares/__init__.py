"""The middleware chain, declared once in app.py: timing (the request's id and record), errors (JSON in the
route family's shape), CORS, auth (the key), rate limits, and GATEWAY_PLUGINS. One middleware per module,
each a factory returning an aiohttp middleware; each writes only its own part of the request.
"""
