"""A commit that keeps failing with errors librdkafka calls retriable is retried until a deadline,
then stops the worker with an error that names the partitions and offsets; the restart loses nothing.

The errors are injected around the real producer: librdkafka's own retriable commit errors (a
coordinator that does not answer in time) are not something a healthy test broker produces.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from muse_stream.broker import BrokerHandle
from muse_stream.config.watcher import ConfigWatcher
from muse_stream.pipeline.worker import Worker, WorkerError, WorkerSettings
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 600


class CommitTimingOut:
    """The worker's real producer, except that every commit_transaction times out (retriable)."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.commit_attempts = 0

    def commit_transaction(self, *args: object) -> None:
        self.commit_attempts += 1
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected: commit timed out", retriable=True))

    def __getattr__(self, name: str) -> object:
        return getattr(self._producer, name)


@pytest.mark.parametrize("overlapped", [True, False], ids=["full-batch-on-the-committer", "inline"])
def test_a_commit_retried_past_its_deadline_stops_the_worker_naming_its_offsets(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path, overlapped: bool
) -> None:
    predictor = small_predictor(tmp_path, seed=1)
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=1)
    one = {"fraud-v1": predictor}
    publish(kafka.bootstrap, topic_names, deployment([TENANT], one, {(TENANT, "card-fraud"): ("fraud-v1", ())}), one, tmp_path)
    values = [orjson.dumps({"event_id": f"e{i}", "features": {"amount_log": i / 100}}) for i in range(EVENTS)]
    produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(None, v) for v in values])
    with ConfigWatcher(kafka.bootstrap, topic_names) as watcher:
        watcher.wait_for_version(1, timeout=30)

        def settings(**extra: int) -> WorkerSettings:
            return WorkerSettings(
                bootstrap=kafka.bootstrap,
                names=topic_names,
                worker_id="w1",
                max_batch=100 if overlapped else 10 * EVENTS,
                commit_interval_ms=1000,
                **extra,
            )

        # An outage limit of 0: no recreation of the clients, the first failure stops the worker.
        stuck = Worker(settings(transaction_retry_timeout_ms=400, outage_limit_ms=0), watcher.live_snapshot)
        timing_out = CommitTimingOut(stuck.producer)
        stuck.transactions.producer = timing_out  # type: ignore[assignment]
        with pytest.raises(
            WorkerError,
            match=rf"commit of the transaction for {topic_names.input_topic(TENANT)}\[0\] "
            r"up to offset \d+ still failed after 0.4 s of retries "
            r".*injected: commit timed out.*restart",
        ):
            stuck.run()
        assert timing_out.commit_attempts > 1  # retried, then gave up
        assert stuck.stats.results == 0 and stuck.stats.aborts == 0  # given up on, not aborted: the restart settles it

        healthy = Worker(settings(), watcher.live_snapshot)  # the restart, same worker id
        thread = threading.Thread(target=healthy.run)
        thread.start()
        try:
            records = read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=EVENTS, timeout=60)
        finally:
            healthy.stop()
            thread.join(30)
    assert Counter(orjson.loads(value)["event_id"] for _, _, value in records) == Counter({f"e{i}": 1 for i in range(EVENTS)})
