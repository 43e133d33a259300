"""GatewayMetrics on its own: what one record adds, and labels that stay bounded."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from proxy.observability.metrics import FOLD_EVERY, OTHER, BoundedLabels, GatewayMetrics
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


def _mixed_records(count: int, seed: int) -> list:
    """Records of every kind the counters tell apart, in a random order; times and waits exact in binary,
    so sums do not depend on the order they are added in."""
    randomly = random.Random(seed)
    keys = [uuid.uuid4() for _ in range(4)] + [None]
    records = []
    for _ in range(count):
        status = randomly.choice([200, 200, 200, 404, 429, 500, 502])
        records.append(
            make_record(
                endpoint=randomly.choice(["/api/chat", "/v1/chat/completions", "/v1/messages", "/api/tags", "/x"]),
                status_code=status,
                model=randomly.choice(["a", "b", "c", "d", None, "junk-" + str(randomly.randrange(9))]),
                api_key_id=randomly.choice(keys),
                prompt_tokens=randomly.choice([None, 0, 7, 300]),
                completion_tokens=randomly.choice([None, 0, 3, 900]),
                response_time=randomly.choice([None, randomly.randrange(1, 10**6) * 1000 / 1024]),
                ttfb=randomly.choice([None, randomly.randrange(1, 10**5) * 1000 / 1024]),
                queue_ms=randomly.choice([None, None, randomly.randrange(0, 4000) * 1000 / 1024]),
                limit=randomly.choice(["rate", "concurrency", "tokens", None]) if status == 429 else None,
            )
        )
    return records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_records_counted_in_groups_read_as_records_counted_one_by_one(seed):
    """The same series and values, with bounded label sets that run out on the way."""
    records = _mixed_records(2_000, seed)
    grouped, one_by_one = GatewayMetrics(max_models=3, max_keys=2), GatewayMetrics(max_models=3, max_keys=2)
    for record in records:
        grouped.observe(record)
        one_by_one.observe(record)
        one_by_one.fold()
    # Series may be listed in another order (the order they were made in), which a scrape does not read.
    grouped_lines = generate_latest(grouped.registry).decode().splitlines()
    assert sorted(grouped_lines) == sorted(generate_latest(one_by_one.registry).decode().splitlines())
    assert any('model="other"' in line for line in grouped_lines)  # the bounded sets did run out


async def test_a_full_batch_is_counted_after_the_request_that_filled_it():
    metrics = GatewayMetrics()
    await metrics.on_startup(web.Application())
    for _ in range(FOLD_EVERY):
        metrics.observe(make_record())
    assert metrics._requests.value(("native", "200", "llama3.2")) == 0  # the request that filled it goes on
    await asyncio.sleep(0)
    assert metrics._requests.value(("native", "200", "llama3.2")) == FOLD_EVERY
    metrics.observe(make_record())  # below the batch again: counted at the next scrape
    assert _sample(metrics, "ollama_gateway_requests_total", family="native", status="200", model="llama3.2") == (
        FOLD_EVERY + 1
    )


def test_a_stream_ends_in_the_gauge_by_the_next_scrape():
    metrics = GatewayMetrics()
    record = make_record()
    metrics._streaming[record.id] = 1
    metrics._streams.inc()
    metrics.observe(record)
    assert _sample(metrics, "ollama_gateway_streams_in_flight") == 0
