"""The gateway's own HTTP routes: health and readiness, metrics, the key and token API, usage statistics and
logs, the model list a key may use, and the OpenAPI document with its /docs page.
"""
