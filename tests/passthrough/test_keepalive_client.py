"""The keep-alive client against a raw socket server that records each request and answers scripted bytes:
what it writes, how it reads answers aiohttp's parser reads, and when a connection is kept or dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import ClientPayloadError, ServerDisconnectedError
from multidict import CIMultiDict
from yarl import URL

from proxy.errors import GatewayError
from proxy.passthrough import keepalive_client
from proxy.passthrough.keepalive_client import KeepAliveClient
from proxy.passthrough.silence import Silences
from proxy.passthrough.upstream import UPSTREAM_ERRORS

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"done":1}\n'


class Upstream:
    """Reads each request whole (head and Content-Length body) and writes `answer(request)`; None closes
    without answering, and `close_after` closes after each answer."""

    def __init__(self, answer: Callable[[bytes], bytes | None], close_after: bool) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future]]:
    servers: list[asyncio.Server] = []

    async def start(
        answer: Callable[[bytes], bytes | None], userinfo: str = "", close_after: bool = False
    ) -> tuple[Upstream, URL]:
        upstream = Upstream(answer, close_after)
        server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return upstream, URL(f"http://{userinfo}127.0.0.1:{port}/api/chat")

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def client() -> AsyncIterator[KeepAliveClient]:
    client = KeepAliveClient(connect_timeout=2, read_bufsize=64 * 1024, silences=Silences(300))
    yield client
    client.close()


async def _fetch(client: KeepAliveClient, url: URL, method: str = "POST", body: bytes | None = b'{"model":"m"}'):
    answer = await client.request(method, url, CIMultiDict({"Content-Type": "application/json"}), body)
    data = await answer.content.read()
    answer.release()
    return answer, data


async def test_a_request_is_written_as_aiohttp_writes_it_and_the_connection_is_kept(serve, client):
    upstream, url = await serve(lambda _: OK)
    answer, data = await _fetch(client, URL(f"{url}?q=a%2Fb", encoded=True))
    assert (answer.status, answer.reason, answer.content_length, data) == (200, "OK", 11, b'{"done":1}\n')
    assert answer.headers["Content-Type"] == "application/json"
    head, body = upstream.requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/chat?q=a%2Fb HTTP/1.1"
    assert lines[1] == f"Host: 127.0.0.1:{url.port}".encode()
    assert b"Content-Length: 13" in lines and b"Content-Type: application/json" in lines
    assert body == b'{"model":"m"}'
    for _ in range(3):
        await _fetch(client, url)
    assert upstream.connections == 1 and len(upstream.requests) == 4


async def test_several_requests_at_once_each_get_a_connection_of_their_own(serve, client):
    upstream, url = await serve(lambda _: OK)
    answers = await asyncio.gather(*(_fetch(client, url) for _ in range(5)))
    assert all(data == b'{"done":1}\n' for _, data in answers)
    assert upstream.connections == 5
    await asyncio.gather(*(_fetch(client, url) for _ in range(5)))
    assert upstream.connections == 5  # all five reused


async def test_credentials_in_the_node_url_are_sent_as_basic_auth(serve, client):
    upstream, url = await serve(lambda _: OK, userinfo="ollama:s%C3%A9same@")
    await _fetch(client, url)
    assert b"Authorization: Basic b2xsYW1hOnPpc2FtZQ==\r\n" in upstream.requests[0]  # latin-1, as aiohttp's BasicAuth
    assert b"ollama" not in upstream.requests[0].split(b"\r\n")[0]


async def test_a_password_alone_in_the_node_url_is_sent_too(serve, client):
    upstream, url = await serve(lambda _: OK, userinfo=":token@")
    await _fetch(client, url)
    assert b"Authorization: Basic OnRva2Vu\r\n" in upstream.requests[0]


async def test_bodiless_requests_say_content_length_0_only_where_a_body_is_expected(serve, client):
    upstream, url = await serve(lambda _: OK)
    await _fetch(client, url, method="DELETE", body=None)
    await _fetch(client, url, method="GET", body=None)
    assert b"Content-Length: 0\r\n" in upstream.requests[0]
    assert b"Content-Length" not in upstream.requests[1]


@pytest.mark.parametrize("close", [b"Connection: close\r\n", b""])
async def test_an_answer_that_ends_its_connection_is_not_reused(serve, client, close):
    version = b"HTTP/1.1" if close else b"HTTP/1.0"
    upstream, url = await serve(lambda _: version + b" 200 OK\r\n" + close + OK.split(b"\r\n", 1)[1])
    await _fetch(client, url)
    await _fetch(client, url)
    assert upstream.connections == 2


async def test_an_answer_still_arriving_when_released_closes_its_connection(serve, client):
    upstream, url = await serve(
        lambda r: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart" if b"/api/chat" in r else OK
    )
    answer = await client.request("POST", url, CIMultiDict(), b"{}")
    answer.release()  # the rest of its body would be taken for the next answer
    answer, data = await _fetch(client, url.with_path("/api/tags"))
    assert data == b'{"done":1}\n' and upstream.connections == 2


async def test_interim_answers_are_skipped(serve, client):
    upstream, url = await serve(
        lambda _: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
    )
    answer, data = await _fetch(client, url)
    assert (answer.status, data) == (200, b'{"done":1}\n')
    await _fetch(client, url)
    assert upstream.connections == 1


async def test_a_chunked_answer_is_read_whole_and_its_connection_kept(serve, client):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\nc\r\n3\r\nde\n\r\n0\r\n\r\n"
    upstream, url = await serve(lambda _: chunked)
    answer, data = await _fetch(client, url)
    assert (data, answer.content_length) == (b"ab\ncde\n", None)
    await _fetch(client, url)
    assert upstream.connections == 1


async def test_an_answer_without_length_is_read_until_the_connection_ends(serve, client):
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    upstream, url = await serve(lambda _: reply, close_after=True)
    answer, data = await _fetch(client, url)
    assert (answer.status, data) == (200, b"all of it")
    await _fetch(client, url)
    assert upstream.connections == 2


async def test_a_head_answer_has_no_body_whatever_its_length_says(serve, client):
    upstream, url = await serve(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    answer, data = await _fetch(client, url, method="HEAD", body=None)
    assert (answer.status, answer.content_length, data) == (200, 1234, b"")
    await _fetch(client, url, method="HEAD", body=None)
    assert upstream.connections == 1


async def test_a_connection_the_node_closed_while_idle_is_replaced(serve, client):
    upstream, url = await serve(lambda _: OK)
    await _fetch(client, url)
    for writer in upstream.writers:
        writer.close()  # Ollama restarted, or an idle timeout of its own
    await asyncio.sleep(0.05)
    answer, data = await _fetch(client, url)
    assert data == b'{"done":1}\n' and upstream.connections == 2


async def test_a_node_that_hangs_up_before_answering_raises_what_aiohttp_raises(serve, client):
    _, url = await serve(lambda _: None)
    with pytest.raises(ServerDisconnectedError):
        await client.request("POST", url, CIMultiDict(), b"{}")


async def test_a_node_that_stays_silent_fails_the_wait_as_a_read_timeout():
    released = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request, never answered
        await released.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/chat")
    client = KeepAliveClient(connect_timeout=2, read_bufsize=64 * 1024, silences=Silences(0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError) as caught:  # the pass-through's 504, and the node marked silent
        await client.request("POST", url, CIMultiDict(), b"{}")
    assert isinstance(caught.value, UPSTREAM_ERRORS) and loop.time() - started >= 0.2
    assert not client._idle.get((url.host, url.port))  # its connection is not kept
    client.close()
    released.set()
    server.close()


async def test_a_body_cut_short_fails_its_reader(serve, client):
    upstream, url = await serve(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", close_after=True)
    answer = await client.request("POST", url, CIMultiDict(), b"{}")
    with pytest.raises(ClientPayloadError):
        await answer.content.read()
    answer.release()
    await asyncio.gather(_fetch(client, url.with_path("/x")), return_exceptions=True)
    assert upstream.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 twohundred OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    ],
)
async def test_a_malformed_answer_raises_what_the_pass_through_takes_for_a_failed_node(serve, client, head):
    _, url = await serve(lambda _: head)
    with pytest.raises(UPSTREAM_ERRORS):
        await client.request("POST", url, CIMultiDict(), b"{}")


async def test_idempotent_requests_are_sent_again_when_a_kept_connection_turns_out_closed(serve, client):
    answers = iter([OK, None, OK, OK, None])  # the node drops the second request on the kept connection
    upstream, url = await serve(lambda _: next(answers))
    await _fetch(client, url, method="GET", body=None)
    answer, data = await _fetch(client, url, method="GET", body=None)
    assert (answer.status, data, upstream.connections) == (200, b'{"done":1}\n', 2)
    await _fetch(client, url)
    with pytest.raises(ServerDisconnectedError):  # a POST may have been acted on: never sent twice
        await _fetch(client, url)
    assert upstream.connections == 2


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
async def test_a_field_with_a_line_break_is_refused_before_anything_is_sent(serve, client, value):
    upstream, url = await serve(lambda _: OK)
    with pytest.raises(GatewayError) as refused:
        await client.request("POST", url, CIMultiDict({"X-Note": value}), b"{}")
    assert refused.value.status == 400
    await asyncio.sleep(0.05)
    assert upstream.requests == []


async def test_connections_idle_too_long_are_closed(serve, client, monkeypatch):
    monkeypatch.setattr(keepalive_client, "IDLE_SECONDS", 0.2)
    upstream, url = await serve(lambda _: OK)
    await _fetch(client, url)
    writer = upstream.writers[0]
    for _ in range(50):
        await asyncio.sleep(0.05)
        if writer.is_closing() or writer.transport.is_closing():
            break
    await asyncio.sleep(0.1)
    await _fetch(client, url)
    assert upstream.connections == 2


async def test_closing_the_client_closes_its_idle_connections(serve):
    client = KeepAliveClient(connect_timeout=2, read_bufsize=64 * 1024, silences=Silences(300))
    upstream, url = await serve(lambda _: OK)
    await _fetch(client, url)
    client.close()
    await asyncio.sleep(0.05)
    await _fetch(client, url)  # still usable, but nothing is pooled any more
    await _fetch(client, url)
    assert upstream.connections == 3


def test_the_aiohttp_installed_offers_what_the_client_uses():
    assert keepalive_client.usable()
