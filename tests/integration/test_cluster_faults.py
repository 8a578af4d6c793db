"""On a local three-node cluster (replication factor 3, min.insync.replicas=2), a worker streams
while one node is SIGKILLed and stays down, and while every node is restarted in turn: exactly one
result per event, and the worker process is never restarted.

The cluster is this module's own (the session's broker is never disturbed); both tests share it,
and each leaves it with every node up.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muse_stream.broker.local import LocalCluster, free_port_pair
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess
from tests.support.predictors import small_predictor
from tests.support.streaming import assert_exactly_once, produce_steadily, wait_until_consuming

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 3000


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="muse-cluster-"))
    cluster = LocalCluster(home=home, port=free_port_pair(nodes=3), nodes=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def _deploy(cluster: LocalCluster, names: TopicNames, tmp_path: Path) -> None:
    admin = TopicAdmin(cluster.bootstrap)
    ensure_tenant_topics(admin, names, (TENANT,), partitions=3)
    assert admin.replication_factors()[names.input_topic(TENANT)] == 3
    assert admin.topic_configs([names.output_topic(TENANT)])[names.output_topic(TENANT)]["min.insync.replicas"] == "2"
    predictor = small_predictor(tmp_path, name="fraud", version="1", seed=1)
    config = deployment((TENANT,), {"fraud-v1": predictor}, {(TENANT, "card-fraud"): ("fraud-v1", ())})
    publish(cluster.bootstrap, names, config, {"fraud-v1": predictor}, tmp_path)


def test_one_node_killed_mid_stream_loses_and_doubles_nothing(
    cluster: LocalCluster, topic_names: TopicNames, tmp_path: Path
) -> None:
    _deploy(cluster, topic_names, tmp_path)
    worker = WorkerProcess(cluster.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    wait_until_consuming(worker)
    producer = produce_steadily(cluster.bootstrap, topic_names, TENANT, EVENTS, seconds=20)
    try:
        time.sleep(5)
        assert cluster.node(1).kill()  # node 1 leads some partitions and may coordinate the group
        producer.join(180)
        assert_exactly_once(cluster.bootstrap, topic_names, TENANT, EVENTS, worker.log_tail(60))
        assert worker.alive(), f"the worker exited:\n{worker.log_tail(60)}"
    finally:
        worker.stop()
        cluster.start()  # node 1 back for the next test


def test_a_rolling_restart_of_every_node_loses_and_doubles_nothing(
    cluster: LocalCluster, topic_names: TopicNames, tmp_path: Path
) -> None:
    _deploy(cluster, topic_names, tmp_path)
    worker = WorkerProcess(cluster.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    wait_until_consuming(worker)
    producer = produce_steadily(cluster.bootstrap, topic_names, TENANT, EVENTS, seconds=20)
    try:
        time.sleep(3)
        for node in cluster.members:
            cluster.restart_node(node.node_id)
        producer.join(180)
        assert_exactly_once(cluster.bootstrap, topic_names, TENANT, EVENTS, worker.log_tail(60))
        assert worker.alive(), f"the worker exited:\n{worker.log_tail(60)}"
    finally:
        worker.stop()
