"""Events streamed at a steady pace while faults happen, and the exactly-once check of the outcome."""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson
from confluent_kafka import Producer

from muse_stream.clients.producing import produce_acknowledged
from muse_stream.clients.settings import producer_config
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.kafka_io import WorkerProcess, read_committed

# How long one chunk may wait for brokers that are away (killed, restarting on a busy machine).
OUTAGE_PATIENCE_S = 180.0


def produce_steadily(
    bootstrap: str, names: TopicNames, tenant: str, events: int, seconds: float, chunks: int = 40
) -> threading.Thread:
    """``events`` events (ids ev-0...) to the tenant's input in ``chunks`` spread over ``seconds``; a
    chunk sent while brokers are away waits for them (idempotent: no duplicates from retries)."""
    X, _ = generate_events(events, seed=5)
    features = events_as_dicts(X)
    topic = names.input_topic(tenant)
    producer = Producer(producer_config(bootstrap, **{"message.timeout.ms": int(OUTAGE_PATIENCE_S * 1000)}))

    def run() -> None:
        for chunk in range(chunks):
            records = [
                (topic, f"ev-{i}".encode(), orjson.dumps({"event_id": f"ev-{i}", "features": features[i]}))
                for i in range(chunk * events // chunks, (chunk + 1) * events // chunks)
            ]
            produce_acknowledged(producer, records, what=f"events to {topic}", timeout_s=OUTAGE_PATIENCE_S)
            time.sleep(seconds / chunks)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def assert_exactly_once(bootstrap: str, names: TopicNames, tenant: str, events: int, logs: str, timeout: float = 120) -> None:
    """The read_committed output holds one result per event id ev-0 ... ev-<events-1>."""
    records = read_committed(bootstrap, [names.output_topic(tenant)], expect=events, timeout=timeout, settle=3.0)
    ids = Counter(orjson.loads(value)["event_id"] for _, _, value in records)
    missing = [f"ev-{i}" for i in range(events) if f"ev-{i}" not in ids]
    doubled = {event_id: n for event_id, n in ids.items() if n > 1}
    assert not missing and not doubled, (
        f"missing={missing[:5]} ({len(missing)}) doubled={list(doubled.items())[:5]} ({len(doubled)})\n{logs}"
    )


def wait_until_consuming(worker: WorkerProcess, timeout: float = 90.0) -> None:
    """Until the worker's log shows it was assigned partitions: faults are injected into a running
    pipeline, not into a worker still starting."""
    deadline = time.monotonic() + timeout
    while "assigned [" not in worker.log_tail(400):
        assert worker.alive(), f"the worker exited while starting:\n{worker.log_tail(40)}"
        assert time.monotonic() < deadline, f"the worker was not assigned partitions within {timeout:.0f} s"
        time.sleep(0.2)
