"""Several Ollama nodes behind one gateway: the nodes configured, what each has pulled and loaded, its
health, and which node a request goes to. Routing and the circuit breaker are plain classes; the poller
that asks the nodes is the only part that talks HTTP."""
