"""The Quix Streams baseline of `muse bench throughput|latency` runs real Kafka transactions.

A baseline that silently ran at-least-once would flatter Quix, so these tests check what the bench
relies on: the app's results are visible to a read_committed reader, its output carries commit
markers (offsets beyond the records), its input offsets are committed, and it runs with a
transactional.id. The scoring app's scores are the predictor's own.

The apps run in the interpreter the bench runs them in (``quix_python``: `make setup`'s
``.venv-quix``, as quixstreams pins an older confluent-kafka than muse's venv has); without one the
tests fail, saying how to make it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from muse_stream.bench.progress import committed_counter, high_watermark_counter
from muse_stream.bench.quix_baseline import quix_python
from muse_stream.bench.throughput import TENANT, deploy_single_tenant
from muse_stream.bench.workload import event_payloads
from muse_stream.broker import BrokerHandle
from muse_stream.errors import MuseError
from muse_stream.topics import TopicNames
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
PARTITIONS = 2


@pytest.fixture(scope="module")
def quix() -> str:
    try:
        return quix_python()
    except MuseError as exc:
        pytest.fail(str(exc), pytrace=False)


def _run_quix(
    quix: str,
    kafka: BrokerHandle,
    names: TopicNames,
    mode: str,
    events: list[bytes],
    log_dir: Path,
) -> tuple[list[tuple[str, bytes | None, bytes]], WorkerProcess]:
    produce(kafka.bootstrap, names.input_topic(TENANT), [(e[13 : e.index(b'"', 13)], e) for e in events])
    app = WorkerProcess(
        kafka.bootstrap,
        names.namespace,
        "q1",
        log_dir,
        "--commit-interval-ms",
        "100",
        entry=("muse_stream.bench.quix_baseline", mode),
        python=quix,
    ).start()
    try:
        records = read_committed(kafka.bootstrap, [names.output_topic(TENANT)], expect=len(events), timeout=90)
        committed = committed_counter(
            kafka.bootstrap, names.worker_group, [(names.input_topic(TENANT), p) for p in range(PARTITIONS)]
        )
        deadline = time.monotonic() + 30
        while committed() < len(events) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert committed() == len(events), "the app's input offsets were not committed"
    finally:
        app.stop()
    written = high_watermark_counter(kafka.bootstrap, [(names.output_topic(TENANT), p) for p in range(PARTITIONS)])()
    assert written > len(records), "no commit markers on the output: the app did not write in transactions"
    log = app.log_tail()
    assert "processing_guarantee=exactly-once transactional.id=" in log, log
    assert "transactional.id=None" not in log and "transactional.id= " not in log, log
    return records, app


def test_the_quix_pass_through_app_copies_every_event_once_in_transactions(
    quix: str, kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path
) -> None:
    deploy_single_tenant(kafka.bootstrap, topic_names, PARTITIONS, None, tmp_path)
    events = event_payloads(300, seed=3)
    records, _ = _run_quix(quix, kafka, topic_names, "passthrough", events, tmp_path)
    assert Counter(value for _, _, value in records) == Counter(events)


def test_the_quix_scoring_app_scores_each_event_with_the_tenants_predictor(
    quix: str, kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path
) -> None:
    predictor = small_predictor(tmp_path)
    deploy_single_tenant(kafka.bootstrap, topic_names, PARTITIONS, predictor, tmp_path)
    events = event_payloads(100, seed=4)
    records, _ = _run_quix(quix, kafka, topic_names, "score", events, tmp_path)
    results = {r["event_id"]: r for r in (orjson.loads(value) for _, _, value in records)}
    assert len(results) == len(records) == len(events)
    payloads = [orjson.loads(e) for e in events]
    expected = predictor.score_batch(predictor.vectorize([p["features"] for p in payloads])).mapped
    got = np.array([results[p["event_id"]]["score"] for p in payloads])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert {r["predictor_id"] for r in results.values()} == {predictor.id}
