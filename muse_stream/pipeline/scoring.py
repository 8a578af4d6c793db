"""Score one micro-batch of input records against one config snapshot. No Kafka in here.

The worker feeds it records read from Kafka and writes what it returns inside one transaction; a
replay feeds it records read back from topics or Parquet. Every input record yields exactly one
outgoing tenant record: a result on the output topic, or a dead letter on the DLQ topic.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from muse_stream.events import MAX_EVENT_BYTES, InputEvent, RejectReason
from muse_stream.predictors import Predictor
from muse_stream.predictors.predictor import MissingFeatureError
from muse_stream.routing import RoutingError, UnknownTenant
from muse_stream.topics import TopicNames

log = logging.getLogger(__name__)


class RoutingDecisionLike(Protocol):
    intent: str
    live: Predictor
    shadows: tuple[Predictor, ...]
    config_version: int


class SnapshotLike(Protocol):
    version: int

    def route(self, tenant: str, intent: str | None) -> RoutingDecisionLike: ...


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """An input record and where it came from; `tenant` is derived from `topic` by the caller."""

    tenant: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes


@dataclass
class BatchOutcome:
    results: list[OutgoingRecord] = field(default_factory=list)
    dead_letters: list[OutgoingRecord] = field(default_factory=list)
    shadows: list[OutgoingRecord] = field(default_factory=list)

    @property
    def tenant_records(self) -> list[OutgoingRecord]:
        return self.results + self.dead_letters


@dataclass(slots=True)
class _Routed:
    record: SourceRecord
    event: InputEvent
    decision: RoutingDecisionLike
    live_score: float | None = None


@dataclass
class ShadowGuard:
    """Keeps shadows from hurting live traffic: a shadow that raises, or that takes longer than
    `budget_ms` for a batch, is skipped for `cooldown_s`. Live results never wait on a skipped shadow."""

    budget_ms: float = 50.0
    cooldown_s: float = 30.0
    disabled_until: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped_events: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def allows(self, predictor_id: str) -> bool:
        return time.monotonic() >= self.disabled_until.get(predictor_id, 0.0)

    def trip(self, predictor_id: str) -> None:
        self.failures[predictor_id] += 1
        self.disabled_until[predictor_id] = time.monotonic() + self.cooldown_s


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


class BatchScorer:
    """Turns input records into result, dead-letter and shadow records for one snapshot."""

    def __init__(self, names: TopicNames, *, shadow_guard: ShadowGuard | None = None,
                 max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.names = names
        self.shadow_guard = shadow_guard or ShadowGuard()
        self.max_event_bytes = max_event_bytes

    def score(self, records: Sequence[SourceRecord], snapshot: SnapshotLike) -> BatchOutcome:
        now_ms = int(time.time() * 1000)
        outcome = BatchOutcome()
        by_live: dict[str, list[_Routed]] = defaultdict(list)
        for record in records:
            routed = self._parse_and_route(record, snapshot, outcome, now_ms)
            if routed is not None:
                by_live[routed.decision.live.id].append(routed)
        for group in by_live.values():
            self._score_live(group, snapshot.version, outcome, now_ms)
        self._score_shadows(by_live, snapshot.version, outcome)
        return outcome

    # -- steps ---------------------------------------------------------------------------------

    def _parse_and_route(self, record: SourceRecord, snapshot: SnapshotLike, outcome: BatchOutcome,
                         now_ms: int) -> _Routed | None:
        def reject(reason: RejectReason, text: str) -> None:
            outcome.dead_letters.append(self._dead_letter(record, reason, text, snapshot.version, now_ms))

        value = record.value
        if not value:
            reject(RejectReason.EMPTY, "the record has no value; send a JSON event object")
            return None
        if len(value) > self.max_event_bytes:
            reject(RejectReason.OVERSIZED,
                   f"the record is {len(value)} bytes, over the limit of {self.max_event_bytes}; send fewer or shorter features")
            return None
        try:
            payload = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            reject(RejectReason.MALFORMED_JSON, f"not valid JSON: {error}")
            return None
        if not isinstance(payload, dict):
            reject(RejectReason.NOT_AN_OBJECT, f"the JSON value is a {type(payload).__name__}, not an object")
            return None
        try:
            event = InputEvent.model_validate(payload)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in problem['loc']) or '(top level)'}: {problem['msg']}"
                for problem in error.errors()[:5]
            )
            reject(RejectReason.SCHEMA_VIOLATION, f"the event does not match the input schema: {problems}")
            return None
        try:
            decision = snapshot.route(record.tenant, event.intent)
        except UnknownTenant as error:
            reject(RejectReason.UNKNOWN_TENANT, str(error))
            return None
        except RoutingError as error:
            reject(RejectReason.UNKNOWN_INTENT, str(error))
            return None
        return _Routed(record, event, decision)

    def _score_live(self, group: list[_Routed], config_version: int, outcome: BatchOutcome, now_ms: int) -> None:
        predictor = group[0].decision.live
        try:
            group, mapped = self._score_group(predictor, group, outcome, config_version, now_ms)
        except Exception as error:  # noqa: BLE001 - a failing model must not stop the pipeline
            log.exception("predictor %s failed on a batch of %d events", predictor, len(group))
            for routed in group:
                outcome.dead_letters.append(self._dead_letter(
                    routed.record, RejectReason.SCORING_FAILED,
                    f"predictor {predictor.name}:{predictor.version} failed: {error}; the operator should check it",
                    config_version, now_ms))
            return
        output_topic = self.names.output_topic
        for routed, score in zip(group, mapped, strict=True):
            routed.live_score = score
            record = routed.record
            result: dict[str, Any] = {
                "event_id": routed.event.event_id,
                "tenant": record.tenant,
                "intent": routed.decision.intent,
                "score": score,
                "predictor_id": predictor.id,
                "predictor_name": predictor.name,
                "predictor_version": predictor.version,
                "config_version": config_version,
                "timings": {"event_timestamp_ms": record.timestamp_ms, "scored_at_ms": now_ms, "batch_size": len(group)},
            }
            outcome.results.append(OutgoingRecord(output_topic(record.tenant), record.key, orjson.dumps(result)))

    def _score_group(self, predictor: Predictor, group: list[_Routed], outcome: BatchOutcome,
                     config_version: int, now_ms: int) -> tuple[list[_Routed], list[float]]:
        """Mapped scores of a batch; events lacking a feature the predictor requires go to the DLQ alone."""
        try:
            return group, predictor.score_records([routed.event.features for routed in group]).mapped.tolist()
        except MissingFeatureError:
            pass
        kept: list[_Routed] = []
        for routed in group:
            try:
                predictor.score_records([routed.event.features])
            except MissingFeatureError as error:
                outcome.dead_letters.append(self._dead_letter(
                    routed.record, RejectReason.MISSING_FEATURE,
                    f"{error}; send every feature the intent's predictor needs", config_version, now_ms))
            else:
                kept.append(routed)
        if not kept:
            return [], []
        return kept, predictor.score_records([routed.event.features for routed in kept]).mapped.tolist()

    def _score_shadows(self, by_live: dict[str, list[_Routed]], config_version: int, outcome: BatchOutcome) -> None:
        by_shadow: dict[str, tuple[Any, list[_Routed]]] = {}
        for group in by_live.values():
            for routed in group:
                if routed.live_score is None:  # went to the DLQ: nothing to compare against
                    continue
                for shadow in routed.decision.shadows:
                    by_shadow.setdefault(shadow.id, (shadow, []))[1].append(routed)
        guard = self.shadow_guard
        for shadow_id, (shadow, group) in by_shadow.items():
            if not guard.allows(shadow_id):
                guard.skipped_events[shadow_id] += len(group)
                continue
            started = time.monotonic()
            try:
                scores = shadow.score_batch(shadow.vectorize([routed.event.features for routed in group]))
            except Exception:  # noqa: BLE001 - a failing shadow never touches live results
                log.warning("shadow predictor %s failed; skipping it for %.0f s", shadow, guard.cooldown_s, exc_info=True)
                guard.trip(shadow_id)
                guard.skipped_events[shadow_id] += len(group)
                continue
            if (time.monotonic() - started) * 1000 > guard.budget_ms:
                log.warning("shadow predictor %s exceeded its %.0f ms budget; skipping it for %.0f s",
                            shadow, guard.budget_ms, guard.cooldown_s)
                guard.trip(shadow_id)
            for routed, raw, corrected, mapped in zip(group, scores.raw.tolist(), scores.corrected.tolist(),
                                                      scores.mapped.tolist(), strict=True):
                shadow_result = {
                    "event_id": routed.event.event_id,
                    "tenant": routed.record.tenant,
                    "intent": routed.decision.intent,
                    "live_predictor_id": routed.decision.live.id,
                    "live_score": routed.live_score,
                    "predictor_id": shadow.id,
                    "predictor_name": shadow.name,
                    "predictor_version": shadow.version,
                    "raw_score": raw,
                    "corrected_score": corrected,
                    "score": mapped,
                    "config_version": config_version,
                }
                outcome.shadows.append(OutgoingRecord(self.names.shadow_topic, routed.record.key, orjson.dumps(shadow_result)))

    def _dead_letter(self, record: SourceRecord, reason: RejectReason, text: str, config_version: int,
                     now_ms: int) -> OutgoingRecord:
        letter = {
            "tenant": record.tenant,
            "reason_code": reason.value,
            "reason": text,
            "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                       "timestamp_ms": record.timestamp_ms},
            "original_key_b64": _b64(record.key),
            "original_value_b64": _b64(record.value),
            "config_version": config_version,
            "failed_at_ms": now_ms,
        }
        return OutgoingRecord(self.names.dlq_topic(record.tenant), record.key, orjson.dumps(letter))
