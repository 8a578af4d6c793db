"""A route change to a new predictor reaches a running worker within 2 s, with no event scored twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.events import ScoreResult
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANT = "bank-a"


def test_route_update_mid_stream(kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> None:
    predictors: dict[str, Predictor] = {
        "fraud-v1": small_predictor(tmp_path, name="fraud", version="1", seed=1),
        "fraud-v2": small_predictor(tmp_path, name="fraud", version="2", seed=2, max_depth=4),
    }
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT], partitions=2)
    route = lambda live: deployment([TENANT], predictors, {(TENANT, "card-fraud"): (live, ())})  # noqa: E731
    assert publish(kafka.bootstrap, topic_names, route("fraud-v1"), predictors, tmp_path) == 1
    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()

    X, _ = generate_events(3000, seed=4)
    values = [orjson.dumps({"event_id": f"e{i}", "features": f}) for i, f in enumerate(events_as_dicts(X))]
    applied_at_ms: list[int] = []

    def produce_steadily() -> None:  # 2900 events over ~9 s
        for start in range(100, len(values), 100):
            produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(v[:16], v) for v in values[start : start + 100]])
            time.sleep(0.3)

    producer = threading.Thread(target=produce_steadily)
    try:
        # The steady stream starts once the worker scores: on a loaded machine a worker can take
        # longer to start than the stream's first seconds, and then no event would meet version 1.
        produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(v[:16], v) for v in values[:100]])
        first = read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=1, timeout=60, settle=0)
        assert first, f"the worker scored nothing within 60 s; {worker.log_tail()}"
        producer.start()
        time.sleep(3)
        assert publish(kafka.bootstrap, topic_names, route("fraud-v2"), predictors, tmp_path) == 2
        applied_at_ms.append(int(time.time() * 1000))
        producer.join()
        records = read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=len(values), timeout=90)
    finally:
        worker.stop()
    results = [ScoreResult.model_validate_json(value) for _, _, value in records]
    assert sorted(r.event_id for r in results) == sorted(f"e{i}" for i in range(len(values))), worker.log_tail()

    version_of = {1: predictors["fraud-v1"].id, 2: predictors["fraud-v2"].id}
    assert all(r.predictor_id == version_of[r.config_version] for r in results)  # one predictor per event, consistent
    old = [r for r in results if r.config_version == 1]
    new = [r for r in results if r.config_version == 2]
    assert old and new
    cutoff = applied_at_ms[0] + 2000
    late_old = [r.event_id for r in old if r.timings.event_timestamp_ms > cutoff]
    assert not late_old, f"{len(late_old)} events produced over 2 s after the apply were scored by the old predictor"
    # Once a worker scores with the new version it never goes back.
    assert max(r.timings.scored_at_ms for r in old) <= min(r.timings.scored_at_ms for r in new)
