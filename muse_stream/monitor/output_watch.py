"""Watching promoted routes' results on the tenants' output topics for ``muse promote --guard``.

The reader is ``assign()``-only with a never-joined group id and ``read_committed`` (what tenants
see, and nothing an aborted transaction wrote), starting at each output partition's end as it was
just before the promotion was published. Counts go through the monitor's aggregates; the verdict
is monitor/guard.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import READ_TIMEOUT_S
from muse_stream.clients.settings import log_reader_config
from muse_stream.errors import MuseError
from muse_stream.events import ScoreResult
from muse_stream.monitor.aggregates import add_scores
from muse_stream.monitor.guard import RouteJudgement, judge_route
from muse_stream.topics import TopicNames

Offsets = dict[tuple[str, int], int]


def output_ends(bootstrap: str, names: TopicNames, tenants: Iterable[str]) -> Offsets:
    """Each output partition's end offset now: where the guard starts reading."""
    partitions = TopicAdmin(bootstrap).existing_topics()
    consumer = Consumer(log_reader_config(bootstrap))
    try:
        ends: Offsets = {}
        for tenant in sorted(set(tenants)):
            topic = names.output_topic(tenant)
            if topic not in partitions:
                raise MuseError(f"tenant {tenant} has no output topic {topic}; create it with `muse tenants add {tenant}`")
            for partition in range(partitions[topic]):
                ends[(topic, partition)] = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=READ_TIMEOUT_S
                )[1]
        return ends
    except KafkaException as error:
        raise MuseError(f"cannot look up the output topics' offsets on {bootstrap}: {error.args[0].str()}") from error
    finally:
        consumer.close()


def watch_routes(
    bootstrap: str,
    start: Offsets,
    routes: Iterable[tuple[str, str]],
    *,
    predictor_id: str,
    config_version: int,
    targets: Mapping[str, float],
    duration_s: float,
    tolerance: float,
    min_events: int,
    on_progress: Callable[[list[RouteJudgement]], None] | None = None,
    progress_every_s: float = 5.0,
) -> list[RouteJudgement]:
    """Judge every (tenant, intent) of ``routes`` on the results of ``predictor_id`` under
    ``config_version`` from ``start`` on, until one fails or ``duration_s`` has passed."""
    wanted = {(tenant, intent): f"{tenant}/{intent}" for tenant, intent in routes}
    thresholds = [float(key) for key in targets]
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    consumer = Consumer(log_reader_config(bootstrap, **{"enable.partition.eof": False, "fetch.wait.max.ms": 100}))
    consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in start.items()])
    deadline = time.monotonic() + duration_s
    next_progress = time.monotonic() + progress_every_s

    def judgements() -> list[RouteJudgement]:
        return [
            judge_route(name, stats.get(key, {}), targets, tolerance=tolerance, min_events=min_events)
            for key, name in wanted.items()
        ]

    try:
        while (now := time.monotonic()) < deadline:
            seen: dict[tuple[str, str], list[tuple[float, str]]] = {}
            for message in consumer.consume(10_000, timeout=min(0.5, deadline - now)):
                if message.error() is not None or not (value := message.value()):
                    continue
                try:
                    result = ScoreResult.model_validate_json(value)
                except ValidationError:
                    continue
                key = (result.tenant, result.intent)
                if key in wanted and result.predictor_id == predictor_id and result.config_version == config_version:
                    seen.setdefault(key, []).append((result.score, result.predictor_version))
            for key, scores in seen.items():
                stats[key] = add_scores(stats.get(key), scores, thresholds=thresholds)
            current = judgements()
            if any(j.verdict == "fail" for j in current):
                return current
            if on_progress is not None and time.monotonic() >= next_progress:
                on_progress(current)
                next_progress += progress_every_s
        return judgements()
    finally:
        consumer.close()
