"""The abort-and-rewind path of the exactly-once loop, driven by injected abortable errors.

A worker runs in this process; after putting half a batch into its transaction, it is told the
transaction must be aborted (as librdkafka says after a failed delivery). Nothing of that
transaction may show, and the rewound batch must come out exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

import muse_stream.pipeline.worker as worker_module
from muse_stream.broker import BrokerHandle
from muse_stream.clients.settings import producer_config
from muse_stream.config.watcher import ConfigWatcher
from muse_stream.pipeline.scoring import OutgoingRecord
from muse_stream.pipeline.worker import Worker, WorkerError, WorkerSettings
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 3000


class AbortingWorker(Worker):
    """Fails the next `aborts` transactions half-way through writing their results."""

    aborts = 0

    def _produce_all(self, records: list[OutgoingRecord]) -> None:
        if self.aborts and records and records[0].topic.endswith(".output"):
            super()._produce_all(records[: len(records) // 2])
            self.aborts -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "injected: delivery failed", txn_requires_abort=True))
        super()._produce_all(records)


class CommitFailingWorker(Worker):
    """Fails the next `aborts` commits on the committer thread, after their offsets went in; each
    failure comes late enough that the loop has read and scored the next batch meanwhile."""

    aborts = 0

    def _finish_transaction(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        if self.aborts:
            self.producer.send_offsets_to_transaction(offsets, group_metadata)
            time.sleep(0.3)
            self.aborts -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "injected: commit failed", txn_requires_abort=True))
        super()._finish_transaction(offsets, group_metadata)


@pytest.fixture
def deployed(kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> Iterator[ConfigWatcher]:
    predictor = small_predictor(tmp_path, seed=1)
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=2)
    one = {"fraud-v1": predictor}
    publish(kafka.bootstrap, topic_names, deployment([TENANT], one, {(TENANT, "card-fraud"): ("fraud-v1", ())}), one, tmp_path)
    with ConfigWatcher(kafka.bootstrap, topic_names) as watcher:
        watcher.wait_for_version(1, timeout=30)
        values = [orjson.dumps({"event_id": f"e{i}", "features": {"amount_log": i / 100}}) for i in range(EVENTS)]
        produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(v[:14], v) for v in values])
        yield watcher


def _worker(kafka: BrokerHandle, names: TopicNames, watcher: ConfigWatcher, worker_id: str, aborts: int) -> AbortingWorker:
    worker = AbortingWorker(
        WorkerSettings(bootstrap=kafka.bootstrap, names=names, worker_id=worker_id, max_batch=500), watcher.live_snapshot
    )
    worker.aborts = aborts
    return worker


def _run_and_read(kafka: BrokerHandle, names: TopicNames, worker: Worker, events: int = EVENTS) -> Counter[str]:
    """Run the worker in a thread until the output holds EVENTS results; their event ids, counted."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        records = read_committed(kafka.bootstrap, [names.output_topic(TENANT)], expect=events, timeout=60)
    finally:
        worker.stop()
        thread.join(30)
    return Counter(orjson.loads(value)["event_id"] for _, _, value in records)


def test_aborted_transactions_are_invisible_and_their_batches_come_out_once(
    kafka: BrokerHandle, topic_names: TopicNames, deployed: ConfigWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "ABORT_BACKOFF_S", 0.01)
    worker = _worker(kafka, topic_names, deployed, "w1", aborts=3)
    ids = _run_and_read(kafka, topic_names, worker)
    assert worker.stats.aborts == 3 and worker.aborts == 0
    assert ids == Counter({f"e{i}": 1 for i in range(EVENTS)})


@pytest.mark.parametrize("overlapped", [True, False], ids=["full-batches-commit-on-the-committer", "commit-inline"])
def test_a_failed_commit_rewinds_its_batch_and_the_batch_scored_meanwhile(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlapped: bool
) -> None:
    """Partition 0 then partition 1, a full batch each: the first commit fails while the second
    batch, from the other partition, is already scored, so that batch must be rewound as well.
    Batches below the cap commit inline, where a failed commit has no batch read after it."""
    monkeypatch.setattr(worker_module, "ABORT_BACKOFF_S", 0.01)
    predictor = small_predictor(tmp_path, seed=1)
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=2)
    one = {"fraud-v1": predictor}
    publish(kafka.bootstrap, topic_names, deployment([TENANT], one, {(TENANT, "card-fraud"): ("fraud-v1", ())}), one, tmp_path)
    half = 400
    producer = Producer(producer_config(kafka.bootstrap))
    for i in range(2 * half):
        producer.produce(
            topic_names.input_topic(TENANT), orjson.dumps({"event_id": f"e{i}", "features": {}}), partition=i // half
        )
    assert producer.flush(30) == 0
    with ConfigWatcher(kafka.bootstrap, topic_names) as watcher:
        watcher.wait_for_version(1, timeout=30)
        worker = CommitFailingWorker(
            WorkerSettings(
                bootstrap=kafka.bootstrap,
                names=topic_names,
                worker_id="w1",
                max_batch=half if overlapped else 10 * half,
                commit_interval_ms=2000,
            ),
            watcher.live_snapshot,
        )
        worker.aborts = 1
        ids = _run_and_read(kafka, topic_names, worker, 2 * half)
    assert worker.stats.aborts == 1 and worker.aborts == 0
    assert ids == Counter({f"e{i}": 1 for i in range(2 * half)})
    assert worker.stats.results == 2 * half  # only committed transactions count


def test_a_batch_that_keeps_failing_stops_the_worker_loudly_and_loses_nothing(
    kafka: BrokerHandle, topic_names: TopicNames, deployed: ConfigWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "ABORT_BACKOFF_S", 0.01)
    failing = _worker(kafka, topic_names, deployed, "w1", aborts=10**6)
    with pytest.raises(
        WorkerError,
        match=rf"{worker_module.MAX_CONSECUTIVE_ABORTS} transactions in a row aborted.*"
        rf"injected: delivery failed.*{topic_names.input_topic(TENANT)}",
    ):
        failing.run()
    assert failing.stats.results == 0

    healthy = _worker(kafka, topic_names, deployed, "w1", aborts=0)  # the restart, same worker id
    ids = _run_and_read(kafka, topic_names, healthy)
    assert ids == Counter({f"e{i}": 1 for i in range(EVENTS)})
