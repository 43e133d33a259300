"""PostgreSQL: the connection pool, the numbered migrations in sql/, the embedded server for a laptop
install, and the generated secret kept beside it.

Database outages are raised as one typed exception at the query boundary, so callers tell an unavailable
database from a bug without looking at driver internals.
"""
