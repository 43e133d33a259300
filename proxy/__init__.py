"""ollama-gateway: an API gateway that lets a team share Ollama safely."""

__version__ = "0.1.0"
