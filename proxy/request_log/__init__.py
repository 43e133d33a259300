"""The usage log: one record per request, queued without blocking and written in batches by a background
writer (COPY into a staging table, then idempotent INSERT and daily rollups in one transaction), a disk
journal while PostgreSQL is away, daily partitions and retention, and the queries that read it back.
"""
