"""Append-only JSON-lines journal of request records the database could not take yet.

Appends go to `current.jsonl`, fsync'd before they return. To replay, the journal is claimed by
renaming it to `replay-<uuid>.jsonl`, so records appended meanwhile start a new file and are never
deleted unread. Several gateways may share a data directory: appends hold an flock, and an appender
that finds its file renamed under it reopens. Everything here blocks: call it from a thread.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from proxy.request_log.record import RequestRecord

log = logging.getLogger(__name__)

CURRENT = "current.jsonl"
REJECTED = "rejected.jsonl"
CLAIMED_GLOB = "replay-*.jsonl"
_FIELDS = tuple(f.name for f in dataclasses.fields(RequestRecord))


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def current(self) -> Path:
        return self.directory / CURRENT

    @property
    def rejected(self) -> Path:
        return self.directory / REJECTED

    def append(self, records: Sequence[RequestRecord]) -> None:
        """Write and fsync `records` for replay; raises OSError when the disk fails."""
        self._append(self.current, records)

    def reject(self, records: Sequence[RequestRecord]) -> None:
        """Keep records PostgreSQL refused as malformed, for a person to look at; never replayed."""
        self._append(self.rejected, records)

    def _append(self, path: Path, records: Sequence[RequestRecord]) -> None:
        data = "".join(json.dumps(to_json(r), separators=(",", ":")) + "\n" for r in records).encode()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _same_file(fd, path):
                    new_file = os.fstat(fd).st_size == 0
                    _write_all(fd, _after_torn_line(fd) + data)
                    os.fsync(fd)
                    if new_file:  # the file's name must survive a crash too
                        _fsync_directory(self.directory)
                    return
            finally:
                os.close(fd)  # also releases the lock
            # Claimed (renamed) between our open and our lock: append to the new file instead.

    def claim(self) -> list[Path]:
        """Take every journal file for replay: the current one (renamed) and earlier claims."""
        try:
            fd = os.open(self.current, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # wait out an append in progress
                if _same_file(fd, self.current):
                    os.rename(self.current, self.directory / f"replay-{uuid.uuid4().hex}.jsonl")
            finally:
                os.close(fd)
        return sorted(self.directory.glob(CLAIMED_GLOB))

    def probe(self) -> None:
        """Create the directory and write, fsync and remove a file in it; raises OSError if any fails.

        Run at start, so an unusable directory is found then, not in the outage it is there for.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f".probe-{uuid.uuid4().hex}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)

    def pending(self) -> bool:
        return self.current.exists() or any(self.directory.glob(CLAIMED_GLOB))

    @staticmethod
    def read(path: Path, batch_size: int) -> Iterator[list[RequestRecord]]:
        """Batches of records from a claimed file; a torn or corrupt line is logged and skipped."""
        batch: list[RequestRecord] = []
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    batch.append(from_json(json.loads(line)))
                except (ValueError, TypeError, KeyError) as exc:
                    log.error("journal %s line %d unreadable (%s); skipped", path.name, number, exc)
                    continue
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


def to_json(record: RequestRecord) -> dict[str, Any]:
    return {name: _plain(getattr(record, name)) for name in _FIELDS}


def from_json(data: dict[str, Any]) -> RequestRecord:
    values = {name: data[name] for name in _FIELDS if name in data}
    values["id"] = uuid.UUID(values["id"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    if values.get("api_key_id"):
        values["api_key_id"] = uuid.UUID(values["api_key_id"])
    if values["created_at"].tzinfo is None:
        raise ValueError("created_at without a time zone")
    record = RequestRecord(**values)
    record.make_storable()  # a file from an older version, or edited by hand, is outside input too
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _after_torn_line(fd: int) -> bytes:
    # A process killed mid-append leaves a line without its newline; start on a fresh line so
    # only that torn record is unreadable, not the next one too.
    size = os.fstat(fd).st_size
    return b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
