"""Queue instead of refuse: requests wait in the gateway for a free slot on an Ollama node, served in
fair order between keys (the Virtual Token Counter, scheduler.py, pure), by gate.py on the event loop."""
