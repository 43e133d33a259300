"""Several real fake-Ollama servers behind the real gateway: routing, failover, merged views, admin fan-out."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import ollama
import pytest

from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_nodes import FakeNode, backends_file, start_nodes
from tests.support.polling import eventually

# Each model on two nodes, loaded on one; `mistral` on one node only.
SPECS = {
    "gpu1": (["llama3.2:latest", "qwen3:0.6b"], ["llama3.2:latest"]),
    "gpu2": (["qwen3:0.6b", "nomic-embed-text:latest", "mistral:7b"], ["qwen3:0.6b"]),
    "gpu3": (["llama3.2:latest", "nomic-embed-text:latest"], ["nomic-embed-text:latest"]),
}
LOADED_ON = {"llama3.2": "gpu1", "qwen3:0.6b": "gpu2", "nomic-embed-text": "gpu3", "mistral:7b": "gpu2"}


@pytest.fixture(autouse=True)
def _empty_tables(db):
    """From empty tables: a demo key another test file left with a small rate limit would answer 429 here."""


@pytest.fixture
async def nodes():
    running = await start_nodes(SPECS)
    yield {node.name: node for node in running}
    for node in running:
        await node.stop()


async def gateway_for(aiohttp_server, database_url, tmp_path, nodes, sink=None, **overrides):
    path = backends_file(tmp_path, list(nodes.values()), capacity=16)
    limits = {"default_rate_limit": 10_000_000, "default_burst": 10_000_000}
    settings = make_settings(database_url, ollama_backends=path, **limits, **overrides)
    return await start_gateway(aiohttp_server, settings, **({"sink": sink} if sink is not None else {}))


def generated(node: FakeNode) -> list[str]:
    return [r.json_body["model"] for r in node.state.requests if r.path in ("/api/generate", "/api/embed")]


async def test_mixed_requests_go_only_to_nodes_with_the_model_and_almost_all_to_where_it_is_loaded(
    aiohttp_server, database_url, tmp_path, nodes, http, sink
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes, sink=sink)
    models = list(LOADED_ON)
    rng = random.Random(15)
    plan = [rng.choice(models) for _ in range(3000)]
    gate = asyncio.Semaphore(8)

    async def one(model: str) -> None:
        path, body = ("/api/embed", {"model": model, "input": "hi"}) if "embed" in model else (
            "/api/generate", {"model": model, "prompt": "why", "stream": False})  # fmt: skip
        async with gate, http.post(gateway.u(path), json=body, headers=bearer(USER_KEY)) as response:
            assert response.status == 200, await response.text()
            await response.read()

    await asyncio.gather(*(one(model) for model in plan))
    for name, node in nodes.items():
        pulled = {m.split(":")[0] for m in SPECS[name][0]} | set(SPECS[name][0])
        assert all(model in pulled for model in generated(node)), f"{name} got a model it does not have"
    sent = Counter(plan)
    for model, home in LOADED_ON.items():
        share = generated(nodes[home]).count(model) / sent[model]
        assert share >= 0.95, f"{model}: {share:.1%} went to {home}, where it is loaded"
    nodes_seen = Counter(record.node for record in sink.records if record.endpoint in ("/api/generate", "/api/embed"))
    assert set(nodes_seen) <= {"gpu1", "gpu2", "gpu3"} and sum(nodes_seen.values()) == 3000


async def test_no_node_has_it_is_404_and_only_a_down_node_has_it_is_503(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    body = {"model": "phi4", "prompt": "x", "stream": False}
    async with http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY)) as response:
        assert response.status == 404 and await response.json() == {"error": "model 'phi4' not found"}
    await nodes["gpu2"].stop()  # the only node with mistral
    await eventually(lambda: _status(http, gateway, "gpu2", "down"), "gpu2 seen down")
    body = {"model": "mistral:7b", "prompt": "x", "stream": False}
    async with http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY)) as response:
        assert response.status == 503 and response.headers["Retry-After"]


async def _backends(http, gateway) -> dict:
    async with http.get(gateway.u("/api/backends"), headers=bearer(ADMIN_KEY)) as response:
        assert response.status == 200
        return {node["name"]: node for node in (await response.json())["backends"]}


async def _status(http, gateway, name: str, status: str) -> bool:
    return (await _backends(http, gateway))[name]["status"] == status


async def test_a_503_or_a_stale_model_list_fails_over_before_the_first_byte(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    nodes["gpu1"].state.fault = "busy"  # llama3.2 is loaded there
    body = {"model": "llama3.2", "prompt": "x", "stream": False}
    for _ in range(3):
        async with http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY)) as response:
            assert response.status == 200
    # One 503, then the key stays on gpu3, where its model is now loaded.
    assert nodes["gpu1"].served("/api/generate") == 1 and generated(nodes["gpu3"]) == ["llama3.2"] * 3
    assert (await _backends(http, gateway))["gpu1"]["failures"] == 1


async def test_a_model_deleted_behind_the_gateways_back_fails_over_and_the_list_is_read_again(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    nodes["gpu2"].state.models.remove("qwen3:0.6b")  # loaded there as far as the gateway knows
    body = {"model": "qwen3:0.6b", "prompt": "x", "stream": False}
    async with http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY)) as response:
        assert response.status == 200
    assert generated(nodes["gpu1"]) == ["qwen3:0.6b"]

    async def forgotten() -> bool:
        return "qwen3:0.6b" not in (await _backends(http, gateway))["gpu2"]["models"]

    await eventually(forgotten, "gpu2's /api/tags read again")


async def test_a_hanging_node_costs_the_first_byte_timeout_once_then_is_out(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes, upstream_read_timeout=1.0)
    nodes["gpu1"].state.fault = "hang"
    body = {"model": "llama3.2", "prompt": "x", "stream": False}
    for _ in range(5):
        async with http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY)) as response:
            assert response.status == 200
    hung = [r for r in nodes["gpu1"].state.requests if r.path == "/api/generate"]
    assert len(hung) == 1  # one request waited for the timeout; the rest never went there
    assert generated(nodes["gpu3"]) == ["llama3.2"] * 5
    assert (await _backends(http, gateway))["gpu1"]["status"] == "down"


async def test_merged_tags_through_the_real_ollama_client(aiohttp_server, database_url, tmp_path, nodes):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    client = ollama.AsyncClient(host=str(gateway.url), headers=bearer(ADMIN_KEY))
    listed = [model.model for model in (await client.list()).models]
    assert listed == ["llama3.2:latest", "qwen3:0.6b", "nomic-embed-text:latest", "mistral:7b"]
    loaded = [model.model for model in (await client.ps()).models]
    assert sorted(loaded) == sorted(m for _, (_, on) in SPECS.items() for m in on)


async def test_merged_lists_are_filtered_by_the_keys_allow_list(aiohttp_server, database_url, tmp_path, nodes, http):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    async with http.post(
        gateway.u("/api/keys"), json={"name": "narrow", "models": ["qwen3:*", "mistral"]}, headers=bearer(ADMIN_KEY)
    ) as response:
        key = (await response.json())["key"]
    async with http.get(gateway.u("/v1/models"), headers=bearer(key)) as response:
        assert [m["id"] for m in (await response.json())["data"]] == ["qwen3:0.6b"]
    async with http.get(gateway.u("/api/models"), headers=bearer(key)) as response:
        assert [m["name"] for m in (await response.json())["models"]] == ["qwen3:0.6b"]


async def test_pull_without_a_header_streams_each_nodes_progress_then_one_success(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    client = ollama.AsyncClient(host=str(gateway.url), headers=bearer(ADMIN_KEY))
    lines = [part async for part in await client.pull("gemma3", stream=True)]
    assert lines[-1].status == "success"
    assert {f"success on {name}" for name in nodes} <= {line.status for line in lines}
    for node in nodes.values():
        assert "gemma3:latest" in node.state.models
    async with http.post(gateway.u("/api/pull"), json={"model": "phi4"}, headers=bearer(ADMIN_KEY)) as response:
        raw = [json.loads(line) for line in (await response.read()).splitlines()]
    assert {line["backend"] for line in raw[:-1]} == set(nodes) and raw[-1] == {"status": "success"}


async def test_x_ollama_backend_picks_one_node_and_an_unknown_name_is_a_400(
    aiohttp_server, database_url, tmp_path, nodes, http
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    headers = {**bearer(ADMIN_KEY), "X-Ollama-Backend": "gpu3"}
    async with http.post(gateway.u("/api/pull"), json={"model": "phi4", "stream": False}, headers=headers) as response:
        assert response.status == 200 and await response.json() == {"status": "success"}
    assert ["phi4:latest" in node.state.models for node in nodes.values()] == [False, False, True]
    assert "x-ollama-backend" not in nodes["gpu3"].state.requests[-1].headers
    headers["X-Ollama-Backend"] = "gpu9"
    async with http.delete(gateway.u("/api/delete"), json={"model": "phi4"}, headers=headers) as response:
        assert response.status == 400
        assert "gpu1, gpu2, gpu3" in (await response.json())["error"]
    async with http.delete(gateway.u("/api/delete"), json={"model": "llama3.2"}, headers=bearer(ADMIN_KEY)) as response:
        assert response.status == 200
    assert ["llama3.2:latest" in node.state.models for node in nodes.values()] == [False, False, False]


async def test_operator_views_backends_ready_and_metrics(aiohttp_server, database_url, tmp_path, nodes, http):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, nodes)
    seen = await _backends(http, gateway)
    assert seen["gpu2"]["models"] == SPECS["gpu2"][0] and seen["gpu2"]["loaded"] == ["qwen3:0.6b"]
    assert seen["gpu1"]["url"] == nodes["gpu1"].url and seen["gpu1"]["last_probe"] is not None
    async with http.get(gateway.u("/api/backends"), headers=bearer(USER_KEY)) as response:
        assert response.status == 403
    async with http.get(gateway.u("/metrics"), headers=bearer(ADMIN_KEY)) as response:
        text = await response.text()
    assert 'ollama_gateway_backend_up{backend="gpu1"} 1.0' in text
    async with http.get(gateway.u("/ready")) as response:
        assert response.status == 200
    for node in nodes.values():
        await node.stop()
    await eventually(lambda: _status(http, gateway, "gpu3", "down"), "every node seen down")
    await eventually(lambda: _ready_status(http, gateway, 503), "not ready without a healthy node")


async def _ready_status(http, gateway, status: int) -> bool:
    async with http.get(gateway.u("/ready")) as response:
        return response.status == status


async def test_a_single_node_is_probed_when_someone_looks(aiohttp_server, database_url, db, http):
    """One node is not polled in the background; GET /api/backends (the console's Nodes page) probes it."""
    [node] = await start_nodes({"only": (["llama3.2:latest", "qwen3:0.6b"], ["qwen3:0.6b"])})
    try:
        settings = make_settings(database_url, ollama_base_url=node.url)
        gateway = await start_gateway(aiohttp_server, settings)
        [seen] = (await _listing(http, gateway))["backends"]
        assert seen["models"] == ["llama3.2:latest", "qwen3:0.6b"] and seen["loaded"] == ["qwen3:0.6b"]
        assert seen["status"] == "up" and seen["last_probe"] is not None
        probes = node.served("/api/ps")
        await _listing(http, gateway)
        assert node.served("/api/ps") == probes  # within ON_DEMAND_EVERY of the last probe: it stands
    finally:
        await node.stop()


async def _listing(http, gateway) -> dict:
    async with http.get(gateway.u("/api/backends"), headers=bearer(ADMIN_KEY)) as response:
        assert response.status == 200
        return await response.json()
