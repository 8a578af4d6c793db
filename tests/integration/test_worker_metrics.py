"""`muse worker --metrics-port`: what /metrics counts equals what the output, DLQ and shadow topics hold."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from muse_stream.broker import BrokerHandle
from muse_stream.events import DeadLetter, ShadowResult
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANTS = ["bank-a", "bank-b"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value of every sample on /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_what_the_topics_hold(kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> None:
    predictors: dict[str, Predictor] = {
        "fraud-v1": small_predictor(tmp_path, name="fraud", version="1", seed=1),
        "fraud-v2": small_predictor(tmp_path, name="fraud", version="2", seed=2),
    }
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, TENANTS, partitions=2)
    # bank-a's events are shadowed by fraud-v2, bank-b's are not.
    config = deployment(
        TENANTS, predictors, {("bank-a", "card-fraud"): ("fraud-v1", ("fraud-v2",)), ("bank-b", "card-fraud"): ("fraud-v1", ())}
    )
    assert publish(kafka.bootstrap, topic_names, config, predictors, tmp_path) == 1
    port = free_port()
    worker = WorkerProcess(
        kafka.bootstrap, topic_names.namespace, "w1", tmp_path, "--metrics-port", str(port), "--shadow-budget-ms", "5000"
    ).start()
    features = events_as_dicts(generate_events(300, seed=5)[0])
    sent = {"bank-a": 300, "bank-b": 200}
    bad = {"bank-a": [b"not json", b"[1]"], "bank-b": [orjson.dumps({"event_id": "x", "intent": "nope", "features": {}})]}
    try:
        for tenant, n in sent.items():
            records = [
                (f"{tenant}-{i}".encode(), orjson.dumps({"event_id": f"{tenant}-{i}", "features": features[i]})) for i in range(n)
            ]
            produce(kafka.bootstrap, topic_names.input_topic(tenant), records + [(b"bad", v) for v in bad[tenant]])
        total = sum(sent.values()) + sum(len(v) for v in bad.values())
        outputs = read_committed(
            kafka.bootstrap,
            [topic_names.output_topic(t) for t in TENANTS] + [topic_names.dlq_topic(t) for t in TENANTS],
            expect=total,
            timeout=120,
        )
        assert len(outputs) == total, worker.log_tail()
        shadows = [
            ShadowResult.model_validate_json(v)
            for _, _, v in read_committed(kafka.bootstrap, [topic_names.shadow_topic], expect=300, timeout=60)
        ]
        deadline = time.monotonic() + 20
        while True:  # the last batch's commit is counted as it lands; lag reaches 0 with it
            metrics = scrape(port)
            lag = [v for (name, _), v in metrics.items() if name == "muse_worker_consumer_lag"]
            if (
                metrics.get(("muse_worker_events_in_total", (("tenant", "bank-b"),))) == 201 and len(lag) == 4 and not any(lag)
            ) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        worker.stop()
    results = Counter(topic_names.tenant_of_topic(t) for t, _, _ in outputs if t.endswith(".output"))
    letters = Counter(
        (d.tenant, d.reason_code.value) for d in (DeadLetter.model_validate_json(v) for t, _, v in outputs if t.endswith(".dlq"))
    )
    assert results == {"bank-a": 300, "bank-b": 200}
    assert letters == {("bank-a", "malformed_json"): 1, ("bank-a", "not_a_json_object"): 1, ("bank-b", "unknown_intent"): 1}
    for tenant in TENANTS:
        label = (("tenant", tenant),)
        assert metrics[("muse_worker_results_total", label)] == results[tenant]
        assert metrics[("muse_worker_events_in_total", label)] == sent[tenant] + len(bad[tenant])
    for (tenant, reason), n in letters.items():
        assert metrics[("muse_worker_dead_letters_total", (("reason", reason), ("tenant", tenant)))] == n
    assert Counter(s.tenant for s in shadows) == {"bank-a": 300}
    assert metrics[("muse_worker_shadow_results_total", (("tenant", "bank-a"),))] == 300
    assert ("muse_worker_shadow_results_total", (("tenant", "bank-b"),)) not in metrics
    assert metrics[("muse_worker_batch_size_sum", ())] == total
    assert metrics[("muse_worker_batch_size_count", ())] == metrics[("muse_worker_transaction_duration_seconds_count", ())] >= 1
    assert metrics[("muse_worker_config_version", ())] == 1 and metrics[("muse_worker_aborts", ())] == 0
    lags = {labels: v for (name, labels), v in metrics.items() if name == "muse_worker_consumer_lag"}
    assert sorted(dict(labels)["topic"] for labels in lags) == sorted([topic_names.input_topic(t) for t in TENANTS] * 2)
    assert set(lags.values()) == {0}
