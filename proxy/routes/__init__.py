"""The gateway's own routes; the pass-through to Ollama is registered last, in app.py."""
