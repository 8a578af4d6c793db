"""The worker freezes what start-up made before its loop, so a full collection does not stall it.

Evidence (README, Performance: latency): a full collection of the unfrozen heap paused the scoring
loop for tens to hundreds of ms on this machine, which set the p99 of `muse bench latency`.
"""

from __future__ import annotations

import gc
import threading

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


def test_the_worker_loop_runs_with_start_up_objects_frozen(kafka: BrokerHandle, topic_names: TopicNames) -> None:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=1)
    produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(None, orjson.dumps({"event_id": "e1"}))])
    gc.unfreeze()
    no_config = ConfigSnapshot.empty()
    worker = Worker(
        WorkerSettings(bootstrap=kafka.bootstrap, names=topic_names, worker_id="g1"),
        lambda: no_config,
        PassthroughScorer(topic_names),
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=1, timeout=60, settle=0)
        frozen = gc.get_freeze_count()
    finally:
        worker.stop()
        thread.join(30)
        gc.unfreeze()
    assert frozen > 10_000, f"only {frozen} objects frozen: the worker's loop would walk start-up's heap in full collections"
