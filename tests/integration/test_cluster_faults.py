"""On a local three-node cluster (replication factor 3, min.insync.replicas=2), a worker streams
while one node is SIGKILLed mid-stream and left down, and then every node is restarted in turn (a
rolling restart: the killed one comes back first, the other two by controlled shutdown): exactly
one result per event, and the worker process is never restarted.

The cluster is this module's own (the session's broker is never disturbed). One stream carries both
faults: each node start costs tens of seconds on a busy machine, and a second worker, stream and
read-back would only repeat what this one shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muse_stream.broker.local import LocalCluster
from muse_stream.broker.selection import throwaway_cluster
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess
from tests.support.predictors import small_predictor
from tests.support.streaming import assert_exactly_once, produce_steadily, wait_until_consuming

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 1500
# How long a node may take to start and catch up: a busy 2-core machine running three nodes and a
# worker needed more than the 60 s a single broker gets.
NODE_START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with throwaway_cluster(nodes=3, start_timeout_s=NODE_START_TIMEOUT_S) as cluster:
        yield cluster


def _deploy(cluster: LocalCluster, names: TopicNames, tmp_path: Path) -> None:
    admin = TopicAdmin(cluster.bootstrap)
    ensure_tenant_topics(admin, names, (TENANT,), partitions=3)
    assert admin.replication_factors()[names.input_topic(TENANT)] == 3
    assert admin.topic_configs([names.output_topic(TENANT)])[names.output_topic(TENANT)]["min.insync.replicas"] == "2"
    predictor = small_predictor(tmp_path, name="fraud", version="1", seed=1)
    config = deployment((TENANT,), {"fraud-v1": predictor}, {(TENANT, "card-fraud"): ("fraud-v1", ())})
    publish(cluster.bootstrap, names, config, {"fraud-v1": predictor}, tmp_path)


def test_a_node_killed_mid_stream_then_a_rolling_restart_lose_and_double_nothing(
    cluster: LocalCluster, topic_names: TopicNames, tmp_path: Path
) -> None:
    _deploy(cluster, topic_names, tmp_path)
    worker = WorkerProcess(cluster.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    wait_until_consuming(worker)
    # Spread over about as long as the faults take, so events arrive while each node is away.
    producer = produce_steadily(cluster.bootstrap, topic_names, TENANT, EVENTS, seconds=45)
    try:
        time.sleep(3)
        assert cluster.node(1).kill()  # node 1 leads some partitions and may coordinate the group
        time.sleep(8)  # down past the broker session timeout: its partitions' leaders move
        assert worker.alive(), f"the worker exited with node 1 down:\n{worker.log_tail(60)}"
        for node in cluster.members:  # node 1 first, back from its crash; then 2 and 3
            cluster.restart_node(node.node_id, NODE_START_TIMEOUT_S)
        producer.join(180)
        assert_exactly_once(cluster.bootstrap, topic_names, TENANT, EVENTS, worker.log_tail(60))
        assert worker.alive(), f"the worker exited:\n{worker.log_tail(60)}"
    finally:
        worker.stop()
