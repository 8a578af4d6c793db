"""`muse monitor` against the real broker: per-tenant counts and alert rates, committed records only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.settings import transactional_producer_config
from muse_stream.events import ScoreResult, Timings
from muse_stream.topics import TopicNames

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

# Known scores: per tenant, how many events and which scores (thresholds 0.2, 0.5, 0.6, 0.8).
SCORES = {
    "bank-a": [0.1] * 10 + [0.55] * 6 + [0.9] * 4,  # 20 events: >=0.2: 10, >=0.5: 10, >=0.6: 4, >=0.8: 4
    "bank-b": [0.3] * 3 + [0.7] * 1,  # 4 events: >=0.2: 4, >=0.5: 1, >=0.6: 1, >=0.8: 0
}
EXPECTED_RATES = {
    "bank-a": {"0.2": 0.5, "0.5": 0.5, "0.6": 0.2, "0.8": 0.2},
    "bank-b": {"0.2": 1.0, "0.5": 0.25, "0.6": 0.25, "0.8": 0.0},
}


def _result(tenant: str, score: float, version: str) -> bytes:
    now_ms = int(time.time() * 1000)
    result = ScoreResult(
        event_id=str(uuid.uuid4()), tenant=tenant, intent="card-fraud", score=score,
        predictor_id=f"card-fraud-{version}", predictor_name="card-fraud", predictor_version=version,
        config_version=1, timings=Timings(event_timestamp_ms=now_ms, scored_at_ms=now_ms, batch_size=1),
    )
    return result.model_dump_json().encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return json.loads(response.read())


def _poll(port: int, path: str, done, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = _get(port, path)
            if done(last):
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{path} did not reach the expected state in {timeout:.0f} s; last answer: {last}")


def test_monitor_counts_committed_scores_per_tenant(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames, tmp_path: Path
) -> None:
    for tenant in SCORES:
        admin.ensure(topic_names.tenant_topic_specs(tenant, partitions=2 if tenant == "bank-a" else 1))
    producer = Producer(transactional_producer_config(kafka.bootstrap, f"test-monitor-{uuid.uuid4()}"))
    producer.init_transactions()
    # An aborted batch first: read_committed must never count it.
    producer.begin_transaction()
    for _ in range(7):
        producer.produce(topic_names.output_topic("bank-a"), value=_result("bank-a", 0.99, "v9"))
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    for tenant, scores in SCORES.items():
        for i, score in enumerate(scores):
            version = "v1" if i % 2 else "v2"
            producer.produce(topic_names.output_topic(tenant), key=str(i).encode(), value=_result(tenant, score, version))
    producer.produce(topic_names.output_topic("bank-b"), value=b"not json")  # counted as invalid, not as a score
    producer.commit_transaction()

    port = _free_port()
    env = {**os.environ, "MUSE_BOOTSTRAP": kafka.bootstrap}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from muse_stream.cli import main; sys.exit(main())", "monitor", "--namespace", topic_names.namespace,
         "--web-port", str(port), "--data-dir", str(tmp_path / "faust"), "--rescan", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        def counted(answer: Any) -> bool:
            totals = {row["tenant"]: row["retained"]["count"] + row["retained"]["invalid"] for row in answer["tenants"]}
            return totals == {"bank-a": 20, "bank-b": 5}

        overview = _poll(port, "/tenants/", counted, timeout=45)
        rows = {row["tenant"]: row for row in overview["tenants"]}
        for tenant, scores in SCORES.items():
            retained = rows[tenant]["retained"]
            assert retained["count"] == len(scores)
            assert retained["alert_rates"] == pytest.approx(EXPECTED_RATES[tenant])
            assert retained["target_alert_rates"] == {"0.2": 0.7, "0.5": 0.35, "0.6": 0.1, "0.8": 0.05}
            assert sum(retained["histogram"]) == len(scores)
            assert retained["predictor_versions"] == {"v1": len(scores) // 2, "v2": len(scores) - len(scores) // 2}
        assert rows["bank-a"]["retained"]["invalid"] == 0  # the aborted 0.99s never arrived
        assert rows["bank-b"]["retained"]["invalid"] == 1

        detail = _get(port, "/tenants/bank-b/")
        assert detail["tenant"] == "bank-b"
        assert sum(window["count"] for window in detail["windows"]) == 4
        assert all(window["predictor_versions"].keys() <= {"v1", "v2"} for window in detail["windows"])
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(port, "/tenants/bank-z/")
        assert missing.value.code == 404

        # A tenant added while the monitor runs is picked up (the monitor restarts itself to subscribe).
        admin.ensure(topic_names.tenant_topic_specs("bank-c"))
        producer.begin_transaction()
        for score in (0.1, 0.85):
            producer.produce(topic_names.output_topic("bank-c"), value=_result("bank-c", score, "v1"))
        producer.commit_transaction()
        later = _poll(port, "/tenants/bank-c/", lambda answer: answer.get("retained", {}).get("count") == 2, timeout=30)
        assert later["retained"]["alert_rates"] == pytest.approx({"0.2": 0.5, "0.5": 0.5, "0.6": 0.5, "0.8": 0.5})
        after = {row["tenant"]: row["retained"]["count"] for row in _get(port, "/tenants/")["tenants"]}
        assert after == {"bank-a": 20, "bank-b": 4, "bank-c": 2}  # restored from the changelog, not recounted
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
