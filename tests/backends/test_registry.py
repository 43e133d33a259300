"""proxy/backends/registry.py and routing.py: which nodes a request may go to, best first."""

from __future__ import annotations

import uuid

import pytest
from yarl import URL

from proxy.backends.breaker import COOL_DOWN
from proxy.backends.config import NodeConfig
from proxy.backends.registry import Backends, Outcome
from proxy.errors import GatewayError
from tests.support.fake_clock import FakeClock

KEY = uuid.uuid4()


def make_backends(*models: tuple[str, ...], capacity: int = 4, clock: FakeClock | None = None) -> Backends:
    configs = [NodeConfig(f"n{i}", URL(f"http://10.0.0.{i}:11434"), capacity) for i in range(1, len(models) + 1)]
    backends = Backends(configs, clock=clock or FakeClock())
    for node, names in zip(backends.nodes, models, strict=True):
        node.set_models(names)
    return backends


def names(nodes) -> list[str]:
    return [node.name for node in nodes]


def test_only_nodes_that_have_the_model_and_names_are_normalised_as_ollama_does():
    backends = make_backends(("llama3:latest",), ("qwen3:0.6b",), ("Llama3",))
    assert names(backends.candidates("llama3", KEY)) == ["n1", "n3"]
    assert names(backends.candidates("LLAMA3:latest", KEY)) == ["n1", "n3"]


def test_a_node_with_the_model_loaded_comes_first_then_the_least_busy():
    backends = make_backends(("m:latest",), ("m:latest",), ("m:latest",))
    n1, n2, n3 = backends.nodes
    n3.set_loaded(["m"])
    n1.in_flight = 2
    assert names(backends.candidates("m", KEY)) == ["n3", "n2", "n1"]


def test_a_full_loaded_node_yields_to_one_with_room():
    backends = make_backends(("m:latest",), ("m:latest",), capacity=2)
    n1, _ = backends.nodes
    n1.set_loaded(["m:latest"])
    n1.in_flight = 2
    assert names(backends.candidates("m", KEY)) == ["n2", "n1"]


def test_in_flight_counts_relative_to_capacity():
    configs = [NodeConfig("small", URL("http://a:1"), 2), NodeConfig("big", URL("http://b:1"), 8)]
    backends = Backends(configs)
    for node in backends.nodes:
        node.set_models(["m"])
    backends.nodes[0].in_flight, backends.nodes[1].in_flight = 1, 3
    assert names(backends.candidates("m", KEY)) == ["big", "small"]


def test_a_key_keeps_its_node_for_a_model_while_it_stays_a_good_choice():
    backends = make_backends(("m:latest",), ("m:latest",))
    n1, n2 = backends.nodes
    n2.in_flight = 1
    backends.begin(n2)
    backends.end(n2, Outcome.ANSWERED, model="m", key_id=KEY)  # served: m is loaded there now
    n2.in_flight = 3
    assert names(backends.candidates("m", KEY)) == ["n2", "n1"]  # loaded there, and the key's node
    assert names(backends.candidates("m", uuid.uuid4()))[0] == "n2"  # loaded wins for others too
    n1.set_loaded(["m"])
    assert names(backends.candidates("m", KEY)) == ["n2", "n1"]  # both loaded: the key's node
    assert names(backends.candidates("m", uuid.uuid4())) == ["n1", "n2"]  # others: the least busy


def test_no_node_has_the_model_is_a_404_in_ollamas_words():
    backends = make_backends(("a",), ("b",))
    with pytest.raises(GatewayError) as caught:
        backends.candidates("c", KEY)
    assert (caught.value.status, caught.value.message) == (404, "model 'c' not found")


def test_only_unhealthy_nodes_have_it_is_a_503_with_retry_after():
    backends = make_backends(("a",), ("b",))
    backends.mark_down(backends.nodes[0], "unreachable")
    with pytest.raises(GatewayError) as caught:
        backends.candidates("a", KEY)
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "2"


def test_unreachable_and_silent_take_a_node_out_at_once_and_a_probe_brings_it_back():
    backends = make_backends(("a",), ("a",))
    n1, n2 = backends.nodes
    backends.begin(n1)
    backends.end(n1, Outcome.UNREACHABLE, model="a")
    backends.begin(n2)
    backends.end(n2, Outcome.SILENT, model="a")
    assert (n1.status, n2.status) == ("down", "down")
    backends.mark_up(n1)
    assert names(backends.candidates("a", KEY)) == ["n1"]
    assert n1.breaker.failures == 0  # it came back: its past failures are forgotten


def test_three_failed_answers_open_the_circuit_for_the_cool_down():
    clock = FakeClock()
    backends = make_backends(("a",), ("a",), clock=clock)
    n1, _ = backends.nodes
    for _ in range(3):
        backends.begin(n1)
        backends.end(n1, Outcome.FAILED, model="a")
    assert n1.status == "circuit open"
    backends.mark_up(n1)  # it answers its probes: still out until the cool-down is over
    assert names(backends.candidates("a", KEY)) == ["n2"]
    clock.advance(COOL_DOWN)
    assert "n1" in names(backends.candidates("a", KEY))


def test_model_missing_drops_the_model_from_that_node_and_asks_for_its_tags():
    backends = make_backends(("a",), ("a",))
    asked = []
    backends.refresh_tags = asked.append
    n1, _ = backends.nodes
    backends.begin(n1)
    backends.end(n1, Outcome.MODEL_MISSING, model="a")
    assert asked == [n1] and names(backends.candidates("a", KEY)) == ["n2"]
    assert n1.breaker.failures == 0 and n1.failures_total == 0


def test_no_model_or_a_cloud_model_goes_to_any_healthy_node():
    backends = make_backends(("a",), ("b",))
    backends.nodes[0].in_flight = 1
    assert names(backends.candidates(None, KEY)) == ["n2", "n1"]
    assert names(backends.candidates("gpt-oss:120b-cloud", KEY)) == ["n2", "n1"]


def test_an_unknown_header_name_is_a_400_that_lists_names_but_no_url():
    backends = make_backends(("a",), ("b",))
    with pytest.raises(GatewayError) as caught:
        backends.named("gpu9")
    assert caught.value.status == 400 and "n1, n2" in caught.value.message and "10.0.0" not in caught.value.message
    assert backends.named("n2") is backends.nodes[1]
