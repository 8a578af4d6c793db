"""A shadow predictor's scores on live traffic, read from ``<ns>.internal.shadow``.

Read like a replay reads (``assign()`` with a fresh, never-joined group id, ``read_committed``, no
commit: replay/sources.py), so fitting from shadow traffic never moves any group's offsets and sees
only what the workers committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from muse_stream.clients.admin import TopicAdmin
from muse_stream.errors import MuseError
from muse_stream.events import ShadowResult
from muse_stream.replay.sources import read_ranges, window_ranges
from muse_stream.replay.window import Window
from muse_stream.topics import TopicNames


@dataclass(frozen=True)
class ShadowScore:
    timestamp_ms: int
    tenant: str
    event_id: str
    corrected_score: float


def read_shadow_scores(bootstrap: str, names: TopicNames, predictor_id: str, *, since_s: float | None = None,
                       last: int | None = None, tenants: Iterable[str] | None = None) -> list[ShadowScore]:
    """The scores of the shadow ``predictor_id`` (its spec's id), oldest first: those of the last
    ``since_s`` seconds (all the topic holds when None), of ``tenants`` (all when None), the most
    recent ``last`` of them when given."""
    topic = names.shadow_topic
    partitions = TopicAdmin(bootstrap).existing_topics().get(topic)
    if partitions is None:
        raise MuseError(f"there is no shadow topic {topic} on {bootstrap}: no worker has scored a shadow in namespace "
                        f"{names.namespace!r}; check --namespace")
    window = Window(from_ms=int((time.time() - since_s) * 1000)) if since_s is not None else Window()
    wanted = None if tenants is None else set(tenants)
    marker = predictor_id.encode()
    found: list[ShadowScore] = []
    for batch in read_ranges(bootstrap, window_ranges(bootstrap, {topic: partitions}, window), batch_size=50_000):
        for message in batch:
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
