"""GatewayMetrics on its own: what one record adds, and labels that stay bounded."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import generate_latest

from proxy.observability.metrics import OTHER, BoundedLabels, GatewayMetrics
from tests.support.records import make_record


def _sample(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_bounded_labels_admit_the_first_n_then_other():
    labels = BoundedLabels(2)
    assert [labels.label(v) for v in ("a", "b", "c", "a")] == ["a", "b", OTHER, "a"]
    assert BoundedLabels(5).label("junk", admit=False) == OTHER


def test_a_record_counts_by_family_status_model_and_key():
    metrics = GatewayMetrics()
    key_id = uuid.uuid4()
    metrics.observe(make_record(api_key_id=key_id, ttfb=12.0))
    assert _sample(metrics, "ollama_gateway_requests_total", family="native", status="200", model="llama3.2") == 1
    assert _sample(metrics, "ollama_gateway_tokens_total", family="native", model="llama3.2", kind="prompt") == 11
    assert _sample(metrics, "ollama_gateway_key_tokens_total", key_id=str(key_id)) == 16
    assert _sample(metrics, "ollama_gateway_request_duration_seconds_count", family="native") == 1
    assert _sample(metrics, "ollama_gateway_upstream_ttfb_seconds_sum", family="native") == 0.012


@pytest.mark.parametrize("model", ["llama\ud800", "\udcffllama", "llama\x00", "m" * 3_000])
def test_a_label_from_outside_never_breaks_a_scrape(model):
    # Records reach metrics made storable; labels are made safe again, whoever calls observe.
    metrics = GatewayMetrics()
    metrics.observe(make_record(model=model, status_code=200))
    metrics.observe(make_record(model=model, status_code=200))
    text = generate_latest(metrics.registry).decode()
    assert text.count("ollama_gateway_requests_total{") == 1


def test_junk_models_never_take_a_label_and_models_are_bounded():
    metrics = GatewayMetrics(max_models=2)
    metrics.observe(make_record(model="no-such-model-" * 20, status_code=404))
    for name in ("a", "b", "c"):
        metrics.observe(make_record(model=name))
    text = generate_latest(metrics.registry).decode()
    assert "no-such-model" not in text
    assert 'model="a"' in text and 'model="b"' in text and 'model="c"' not in text
    assert _sample(metrics, "ollama_gateway_requests_total", family="native", status="200", model=OTHER) == 1
    assert _sample(metrics, "ollama_gateway_requests_total", family="native", status="404", model=OTHER) == 1


def test_rate_limit_rejections_by_the_limit_they_hit():
    metrics = GatewayMetrics()
    # As the rate-limit middleware leaves them: the message for people, the limit for machines.
    for limit, error in (
        ("rate", "rate limit exceeded: 5 requests per burst"),
        ("concurrency", "concurrency limit exceeded: 2 requests"),
        ("tokens", "daily token quota exceeded: 100 tokens"),
        ("rate", "rate limit exceeded: again"),
    ):
        metrics.observe(make_record(status_code=429, error=error, limit=limit, model=None))
    assert _sample(metrics, "ollama_gateway_rate_limited_total", reason="rate") == 2
    assert _sample(metrics, "ollama_gateway_rate_limited_total", reason="concurrency") == 1
    assert _sample(metrics, "ollama_gateway_rate_limited_total", reason="tokens") == 1


class _Writer:
    def snapshot(self):
        return {"enqueued": 7, "written": 5, "dropped": 0, "queue_depth": 2}


def test_writer_counters_and_queue_depth_are_read_at_scrape_time():
    metrics = GatewayMetrics(writer=_Writer())
    assert _sample(metrics, "ollama_gateway_log_queue_depth") == 2
    assert _sample(metrics, "ollama_gateway_log_records_total", outcome="written") == 5
    assert _sample(metrics, "ollama_gateway_log_records_total", outcome="dropped") == 0
