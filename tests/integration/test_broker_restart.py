"""A worker rides through its broker being SIGKILLed and started again, without being restarted.

The broker here is this module's own (its own directory and ports), since it is killed: the
session's broker, which other tests share, is never disturbed. The broker stays down for longer
than the worker's session and transaction timeouts, the case that once fenced the worker's static
membership and then its producer and ended the process (or, another time, left it blocked in a
commit for good). The worker process must stay alive throughout, and the read_committed output must
hold exactly one result per event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muse_stream.broker.local import LocalBroker
from muse_stream.broker.selection import throwaway_cluster
from muse_stream.pipeline.worker import Worker, WorkerError, WorkerSettings
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess
from tests.support.predictors import small_predictor
from tests.support.streaming import assert_exactly_once, produce_steadily, wait_until_consuming

pytestmark = pytest.mark.kafka
TENANT = "bank-a"
EVENTS = 2000
DOWN_S = 14.0  # longer than the worker's 10 s session and transaction timeouts
# How long the broker may take to start: on a busy 2-core machine (load 35) a restart took over 60 s.
START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def own_broker() -> Iterator[LocalBroker]:
    with throwaway_cluster(start_timeout_s=START_TIMEOUT_S) as cluster:
        yield cluster.members[0]


def test_worker_rides_through_a_sigkilled_and_restarted_broker(
    own_broker: LocalBroker, topic_names: TopicNames, tmp_path: Path
) -> None:
    own_broker.start(START_TIMEOUT_S)  # a no-op unless the outage-limit test ran first and left it down
    bootstrap = own_broker.bootstrap
    predictor = small_predictor(tmp_path, name="fraud", version="1", seed=1)
    ensure_tenant_topics(TopicAdmin(bootstrap), topic_names, (TENANT,), partitions=3)
    config = deployment((TENANT,), {"fraud-v1": predictor}, {(TENANT, "card-fraud"): ("fraud-v1", ())})
    publish(bootstrap, topic_names, config, {"fraud-v1": predictor}, tmp_path)
    worker = WorkerProcess(bootstrap, topic_names.namespace, "w1", tmp_path).start()
    wait_until_consuming(worker)
    producer = produce_steadily(bootstrap, topic_names, TENANT, EVENTS, seconds=20)
    try:
        time.sleep(3)
        assert own_broker.kill(), f"the test broker is not running:\n{own_broker.log_tail()}"
        time.sleep(DOWN_S)
        assert worker.alive(), f"the worker exited while the broker was down:\n{worker.log_tail(40)}"
        own_broker.start(START_TIMEOUT_S)
        producer.join(180)
        assert_exactly_once(bootstrap, topic_names, TENANT, EVENTS, worker.log_tail(60), timeout=90)
        assert worker.alive(), f"the worker exited after the broker came back:\n{worker.log_tail(60)}"
        assert "recreating them with the same ids" in worker.log_tail(400)
    finally:
        worker.stop()


def test_a_worker_gives_up_loudly_only_after_its_outage_limit(
    own_broker: LocalBroker, topic_names: TopicNames, tmp_path: Path
) -> None:
    """Broker gone for good: the worker keeps recreating its clients until nothing has committed for
    its outage limit, then stops with one error saying what to check. The broker stays down: the
    module's fixture stops nothing more, and the other test starts it if it runs after this one."""
    own_broker.start(START_TIMEOUT_S)  # a no-op unless a failed test left it down
    bootstrap = own_broker.bootstrap
    ensure_tenant_topics(TopicAdmin(bootstrap), topic_names, (TENANT,), partitions=1)
    settings = WorkerSettings(
        bootstrap=bootstrap, names=topic_names, worker_id="w1", outage_limit_ms=8000, transaction_retry_timeout_ms=2000
    )
    worker = Worker(settings, lambda: None)  # type: ignore[arg-type,return-value]  # nothing arrives to score
    own_broker.kill()
    began = time.monotonic()
    with pytest.raises(
        WorkerError,
        match=r"worker w1: no transaction has committed for \d+ s \(outage limit 8 s\) "
        r"over [1-9]\d* recreations .*Check that the brokers at .* are up",
    ):
        worker.run()
    assert time.monotonic() - began < 120
