"""Ollama's own API, relayed unchanged: the route table with each route's access level, reading and checking
the request body (which models it names, whether the key may use them), the upstream connection, the relay
that streams the answer chunk by chunk, and the usage tap that reads token counts beside it.
"""
