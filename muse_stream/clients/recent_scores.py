"""Recent scores on live traffic: a shadow's (for ``muse predictors fit --from-shadow``) and every
route's, live and shadow (for the expected alert rates of ``muse config plan``).

Read like a replay reads (``assign()`` with a fresh, never-joined group id, ``read_committed``, no
commit: replay/sources.py), so these reads never move any group's offsets and see only what the
workers committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import Record
from muse_stream.config.expected_rates import RecentScores
from muse_stream.errors import MuseError
from muse_stream.events import ScoreResult, ShadowResult
from muse_stream.replay.sources import read_ranges, window_ranges
from muse_stream.replay.window import Window
from muse_stream.topics import TopicNames


@dataclass(frozen=True)
class ShadowScore:
    timestamp_ms: int
    tenant: str
    event_id: str
    corrected_score: float


def _recent(bootstrap: str, topics: dict[str, int], since_s: float | None, per_partition: int | None = None) -> Iterator[Record]:
    """The committed records of ``topics`` (name -> partitions) of the last ``since_s`` seconds (all
    when None), at most the last ``per_partition`` of each partition."""
    window = Window(from_ms=int((time.time() - since_s) * 1000)) if since_s is not None else Window()
    ranges = window_ranges(bootstrap, topics, window)
    if per_partition is not None:
        ranges = {key: (max(start, stop - per_partition), stop) for key, (start, stop) in ranges.items()}
    for batch in read_ranges(bootstrap, ranges, batch_size=50_000):
        yield from batch


def read_shadow_scores(
    bootstrap: str,
    names: TopicNames,
    predictor_id: str,
    *,
    since_s: float | None = None,
    last: int | None = None,
    tenants: Iterable[str] | None = None,
) -> list[ShadowScore]:
    """The scores of the shadow ``predictor_id`` (its spec's id), oldest first: those of the last
    ``since_s`` seconds (all the topic holds when None), of ``tenants`` (all when None), the most
    recent ``last`` of them when given."""
    topic = names.shadow_topic
    partitions = TopicAdmin(bootstrap).existing_topics().get(topic)
    if partitions is None:
        raise MuseError(
            f"there is no shadow topic {topic} on {bootstrap}: no worker has scored a shadow in namespace "
            f"{names.namespace!r}; check --namespace"
        )
    wanted = None if tenants is None else set(tenants)
    marker = predictor_id.encode()
    found: list[ShadowScore] = []
    for message in _recent(bootstrap, {topic: partitions}, since_s):
        value = message.value()
        if not value or marker not in value:  # most records are other shadows': skip them unparsed
            continue
        try:
            result = ShadowResult.model_validate_json(value)
        except ValidationError:
            continue
        if result.predictor_id != predictor_id or (wanted is not None and result.tenant not in wanted):
            continue
        found.append(ShadowScore(message.timestamp()[1], result.tenant, result.event_id, result.corrected_score))
    found.sort(key=lambda s: s.timestamp_ms)
    return found[-last:] if last else found


def read_recent_scores(
    bootstrap: str, names: TopicNames, tenants: Iterable[str], *, since_s: float, per_partition: int = 20_000
) -> RecentScores:
    """Live results (output topics of ``tenants``) and shadow scores of the last ``since_s`` seconds,
    at most ``per_partition`` records of each partition, by (tenant, intent, predictor id)."""
    existing = TopicAdmin(bootstrap).existing_topics()
    wanted = set(tenants)
    topics = {
        topic: existing[topic]
        for topic in [*(names.output_topic(t) for t in sorted(wanted)), names.shadow_topic]
        if topic in existing
    }
    live: dict[tuple[str, str, str], list[float]] = {}
    shadow: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    for message in _recent(bootstrap, topics, since_s, per_partition):
        value = message.value()
        if not value:
            continue
        try:
            if message.topic() == names.shadow_topic:
                s = ShadowResult.model_validate_json(value)
                if s.tenant in wanted:
                    mapped, corrected = shadow.setdefault((s.tenant, s.intent, s.predictor_id), ([], []))
                    mapped.append(s.score)
                    corrected.append(s.corrected_score)
            else:
                r = ScoreResult.model_validate_json(value)
                live.setdefault((r.tenant, r.intent, r.predictor_id), []).append(r.score)
        except ValidationError:
            continue
    return RecentScores(
        live={key: np.asarray(scores) for key, scores in live.items()},
        shadow={key: (np.asarray(m), np.asarray(c)) for key, (m, c) in shadow.items()},
    )
