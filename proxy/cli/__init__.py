"""The command line: `ollama-gateway serve | migrate | keys … | stats` (also `python -m proxy`).

Parses arguments, resolves which database a command uses (the embedded PostgreSQL or DATABASE_URL), runs
the server in one process or as `--workers N` sharing one port, and prints tables. It is the top of the
stack: nothing else imports it.
"""
