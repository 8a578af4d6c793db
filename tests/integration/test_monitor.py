"""`muse monitor` against the real broker, reading what a real `muse worker` wrote: per-tenant
counts and alert rates, committed records only.

The worker writes lz4-compressed batches; the monitor (aiokafka under Faust) must decode them, so
its input here comes from the worker itself, never from a test producer of our own making.
"""

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from muse_stream.bench.workload import event_payloads
from muse_stream.broker import BrokerHandle
from muse_stream.clients.settings import transactional_producer_config
from muse_stream.events import ScoreResult, Timings
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

THRESHOLDS = ("0.2", "0.5", "0.6", "0.8")
EVENTS = {"bank-a": 300, "bank-b": 120, "bank-c": 60}  # bank-c arrives while the monitor runs


def _fake_result(tenant: str, score: float, version: str) -> bytes:
    now_ms = int(time.time() * 1000)
    result = ScoreResult(
        event_id=str(uuid.uuid4()),
        tenant=tenant,
        intent="card-fraud",
        score=score,
        predictor_id=f"card-fraud-{version}",
        predictor_name="card-fraud",
        predictor_version=version,
        config_version=1,
        timings=Timings(event_timestamp_ms=now_ms, scored_at_ms=now_ms, batch_size=1),
    )
    return result.model_dump_json().encode()


def _scored(kafka: BrokerHandle, names: TopicNames, tenant: str, worker: WorkerProcess, *, round_: int = 0) -> list[ScoreResult]:
    """Feed the tenant's events to the running worker and return its committed results (of round
    ``round_``: the tenant's ``round_`` earlier rounds are on its output topic already)."""
    count = EVENTS[tenant]
    events = event_payloads(count, seed=list(EVENTS).index(tenant) + 10 * round_, prefix=f"{tenant}-{round_}-")
    produce(kafka.bootstrap, names.input_topic(tenant), [(None, value) for value in events])
    records = read_committed(kafka.bootstrap, [names.output_topic(tenant)], expect=count * (round_ + 1), timeout=90)
    results = [ScoreResult.model_validate_json(value) for _, _, value in records]
    results = [r for r in results if r.event_id.startswith(f"{tenant}-{round_}-")]
    assert len(results) == count, worker.log_tail()
    return results


# `muse monitor`, with each committed-offset lookup 0.3 s slower, as on a loaded machine: at the end of
# a recovery Faust seeks the stream partitions back to their committed offsets, one lookup each, and
# records fetched meanwhile were counted twice or lost (monitor/app.py). A restarted monitor runs
# this code again (it re-executes its own command line).
_MONITOR_WITH_SLOW_LOOKUPS = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer
lookup = AIOKafkaConsumer.committed
async def slow_lookup(self, partition):
    await asyncio.sleep(0.3)
    return await lookup(self, partition)
AIOKafkaConsumer.committed = slow_lookup
from muse_stream.cli import main
sys.exit(main())
"""


def _rates(scores: Sequence[float]) -> dict[str, float]:
    return {t: sum(s >= float(t) for s in scores) / len(scores) for t in THRESHOLDS}


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


def test_monitor_counts_what_the_worker_committed_per_tenant(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path
) -> None:
    predictor = small_predictor(tmp_path / "models", seed=1)
    one = {"fraud-v1": predictor}
    routes = lambda tenants: {(t, "card-fraud"): ("fraud-v1", ()) for t in tenants}  # noqa: E731
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-a"], partitions=2)
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-b"])
    publish(
        kafka.bootstrap,
        topic_names,
        deployment(["bank-a", "bank-b"], one, routes(["bank-a", "bank-b"])),
        one,
        tmp_path / "models",
    )

    # An aborted transaction on an output topic, compressed as the worker compresses: never counted.
    producer = Producer(
        transactional_producer_config(kafka.bootstrap, f"test-monitor-{uuid.uuid4()}", **{"compression.type": "lz4"})
    )
    producer.init_transactions()
    producer.begin_transaction()
    for _ in range(7):
        producer.produce(topic_names.output_topic("bank-a"), value=_fake_result("bank-a", 0.99, "v9"))
    producer.flush()
    producer.abort_transaction()

    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    monitor: subprocess.Popen[bytes] | None = None
    try:
        results = {tenant: _scored(kafka, topic_names, tenant, worker) for tenant in ("bank-a", "bank-b")}
        # A record that is no score result: counted as invalid, not as a score.
        producer.begin_transaction()
        producer.produce(topic_names.output_topic("bank-b"), value=b"not json")
        producer.commit_transaction()
        del producer  # no client of ours outlives the test's broker

        port = _free_port()
        env = {**os.environ, "MUSE_BOOTSTRAP": kafka.bootstrap}
        monitor = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _MONITOR_WITH_SLOW_LOOKUPS,
                "monitor",
                "--namespace",
                topic_names.namespace,
                "--web-port",
                str(port),
                "--data-dir",
                str(tmp_path / "faust"),
                "--rescan",
                "1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def counted(answer: Any) -> bool:
            totals = {row["tenant"]: row["retained"]["count"] + row["retained"]["invalid"] for row in answer["tenants"]}
            return totals == {"bank-a": EVENTS["bank-a"], "bank-b": EVENTS["bank-b"] + 1}

        overview = _poll(port, "/tenants/", counted, timeout=60)
        rows = {row["tenant"]: row for row in overview["tenants"]}
        for tenant, scored in results.items():
            retained = rows[tenant]["retained"]
            assert retained["count"] == len(scored) == EVENTS[tenant]
            assert retained["alert_rates"] == pytest.approx(_rates([r.score for r in scored]))
            assert retained["target_alert_rates"] == {"0.2": 0.7, "0.5": 0.35, "0.6": 0.1, "0.8": 0.05}
            assert sum(retained["histogram"]) == len(scored)
            assert retained["predictor_versions"] == {predictor.spec.version: len(scored)}  # no aborted "v9"
        assert rows["bank-a"]["retained"]["invalid"] == 0  # the aborted 0.99s never arrived
        assert rows["bank-b"]["retained"]["invalid"] == 1

        detail = _get(port, "/tenants/bank-b/")
        assert detail["tenant"] == "bank-b"
        assert sum(window["count"] for window in detail["windows"]) == EVENTS["bank-b"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(port, "/tenants/bank-z/")
        assert missing.value.code == 404

        # A tenant added while the monitor runs is picked up (the monitor restarts itself to subscribe).
        # The monitor is stopped until the new tenant's results, and a second round of bank-a's, are
        # written, so the restarted monitor finds them waiting, on a partition it has never committed
        # and on one it has: each counts once.
        os.killpg(monitor.pid, signal.SIGSTOP)
        try:
            ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-c"])
            everyone = ["bank-a", "bank-b", "bank-c"]
            publish(kafka.bootstrap, topic_names, deployment(everyone, one, routes(everyone)), one, tmp_path / "models")
            later = _scored(kafka, topic_names, "bank-c", worker)
            _scored(kafka, topic_names, "bank-a", worker, round_=1)
        finally:
            os.killpg(monitor.pid, signal.SIGCONT)
        expected = {**EVENTS, "bank-a": 2 * EVENTS["bank-a"]}
        answer = _poll(
            port, "/tenants/bank-c/", lambda answer: answer.get("retained", {}).get("count") == EVENTS["bank-c"], timeout=90
        )
        assert answer["retained"]["alert_rates"] == pytest.approx(_rates([r.score for r in later]))
        _poll(port, "/tenants/bank-a/", lambda answer: answer["retained"]["count"] >= expected["bank-a"], timeout=30)
        time.sleep(2)  # a record read twice would be counted by now
        after = {row["tenant"]: row["retained"]["count"] for row in _get(port, "/tenants/")["tenants"]}
        assert after == expected  # each once; what was counted before the restart restored, not recounted
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
        output = b""
        if monitor is not None:
            monitor.send_signal(signal.SIGTERM)
            try:
                output, _ = monitor.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(monitor.pid, signal.SIGKILL)
                output, _ = monitor.communicate()
            print(output.decode(errors="replace")[-5000:])  # shown by pytest when the test fails
    assert monitor is not None and monitor.returncode == 0, output.decode(errors="replace")[-3000:]
    assert b"We experienced a crash" not in output, output.decode(errors="replace")[-3000:]
