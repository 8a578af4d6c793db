"""The worker runs any scorer that meets `pipeline.scoring.Scorer`, through its periodic reports.

The benchmarks' pass-through scorer (the real one, `muse_stream.bench.passthrough.PassthroughScorer`)
once crashed the worker at its first 10-second report, which read a BatchScorer-only attribute.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import orjson
import pytest

from muse_stream.bench.passthrough import PassthroughScorer
from muse_stream.broker import BrokerHandle
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.pipeline.worker import Worker, WorkerSettings
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, ensure_tenant_topics
from tests.support.kafka_io import produce, read_committed

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 2000


def test_a_pass_through_worker_reports_its_counters_and_copies_every_event_once(
    kafka: BrokerHandle, topic_names: TopicNames, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=2)
    values = [orjson.dumps({"event_id": f"e{i}"}) for i in range(EVENTS)]
    produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(None, v) for v in values])
    no_config = ConfigSnapshot.empty()
    worker = Worker(
        WorkerSettings(bootstrap=kafka.bootstrap, names=topic_names, worker_id="p1", max_batch=200, report_interval_ms=20),
        lambda: no_config,
        PassthroughScorer(topic_names),
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            failures.append(error)

    thread = threading.Thread(target=run)
    with caplog.at_level(logging.INFO, logger="muse_stream.pipeline.worker"):
        thread.start()
        try:
            records = read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=EVENTS, timeout=60)
        finally:
            worker.stop()
            thread.join(30)
    assert not failures, f"the worker failed: {failures[0]!r}"
    assert not thread.is_alive()
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("worker p1: in=")]
    assert reports, "no periodic report was logged"
    assert Counter(orjson.loads(value)["event_id"] for _, _, value in records) == Counter({f"e{i}": 1 for i in range(EVENTS)})
