"""A TCP proxy that tests put between the gateway and PostgreSQL, to cut the database off and back."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.support.ports import free_port


class TcpProxy:
    """Relays 127.0.0.1:<port> to a TCP target or a unix socket (the embedded server's).

    `cut()` closes every connection and refuses new ones (the listening socket is closed, so
    connects fail at once); `stall()` closes every connection and accepts new ones that never get
    an answer, as a dead host behind a live address would; `restore()` relays again on the same port.
    `hold()` keeps the connections but delays what flows through them until `release()`: a slow
    database rather than a lost one.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()  # bound again after every cut(): never one a client socket could take meanwhile
        self._server: asyncio.Server | None = None
        self._stalled = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    async def to_dsn(cls, dsn: str) -> tuple[TcpProxy, str]:
        """A proxy in front of `dsn`'s server, and the DSN that goes through it."""
        parts = urlsplit(dsn)
        query = dict(parse_qsl(parts.query))
        socket_dir = query.pop("host", None)  # libpq style: ?host=/dir means a unix socket there
        if socket_dir and socket_dir.startswith("/"):
            proxy = cls(f"{socket_dir}/.s.PGSQL.{query.pop('port', parts.port or 5432)}", 0)
        else:
            proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.restore()
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{proxy.port}" if auth else f"127.0.0.1:{proxy.port}"
        return proxy, urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    async def restore(self) -> None:
        if self._stalled:
            await self.cut()
        self._stalled = False
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self._flowing.set()  # a hold ends with the connections it held
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def stall(self) -> None:
        await self.cut()
        self._stalled = True
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                while await reader.read(65536):  # read and never answer, until either side closes
                    pass
        finally:
            self._writers.discard(writer)

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = self.target
            if host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(host)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [asyncio.create_task(self._pipe(reader, up_writer)), asyncio.create_task(self._pipe(up_reader, writer))]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.difference_update(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
