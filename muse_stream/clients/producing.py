"""Producing with librdkafka's contracts: batches per topic, and retrying what it calls retriable.

One place for both, so the worker's transactions, the config publisher, the demo and the
benchmarks all queue records and retry transactional calls the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, Producer


def produce_grouped(producer: Producer, records: Iterable[tuple[str, bytes | None, bytes | None]], *,
                    on_delivery: Callable[[KafkaError | None, object], None] | None = None) -> int:
    """Queue ``(topic, key, value)`` records with one ``produce_batch`` call per topic; returns how many.

    Why not ``produce()`` per record: librdkafka finds a topic's handle by walking the list of every
    topic the producer has used, once per call, so with 500 tenants' output topics a record cost
    ~2 us more, 10 ms per 5,000-record batch; one lookup per topic does not grow with the tenants.
    Records keep their order within a topic, except that records refused because the local queue
    was full are queued again after the ones accepted with them. Any other refusal raises.
    """
    by_topic: dict[str, list[dict[str, bytes | None]]] = {}
    count = 0
    for topic, key, value in records:
        messages = by_topic.get(topic)
        if messages is None:
            messages = by_topic[topic] = []
        messages.append({"key": key, "value": value})
        count += 1
    for topic, messages in by_topic.items():
        while messages:
            if producer.produce_batch(topic, messages, on_delivery=on_delivery) == len(messages):
                break
            refused = [m for m in messages if "_error" in m]
            for message in refused:
                error: KafkaError = message.pop("_error")  # type: ignore[assignment]
                if error.code() != KafkaError._QUEUE_FULL:
                    raise KafkaException(error)
            messages = refused
            producer.poll(0.05)  # the local queue is full: let deliveries drain it
    return count


def call_retrying(call: Callable[..., object], *args: object, attempts: int | None = None,
                  deadline: float | None = None) -> None:
    """Call ``call(*args)`` again while librdkafka says its error is retriable (at most ``attempts``
    times, and no new attempt after ``deadline``, a ``time.monotonic()`` instant; both None: until
    it is not). Past either limit the last retriable error is raised. For commit_transaction this is
    also the documented way to learn the outcome of a commit that timed out."""
    attempt = 0
    while True:
        attempt += 1
        try:
            call(*args)
            return
        except KafkaException as exception:
            if (not exception.args[0].retriable() or (attempts is not None and attempt >= attempts)
                    or (deadline is not None and time.monotonic() >= deadline)):
                raise
