"""Score one micro-batch of input records against one config snapshot. No Kafka in here.

The worker feeds it records read from Kafka and writes what it returns inside one transaction; a
replay feeds it records read back from topics or Parquet. Every input record yields exactly one
outgoing tenant record: a result on the output topic, or a dead letter on the DLQ topic.
"""

from __future__ import annotations

import base64
import functools
import logging
import operator
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson
from pydantic import ValidationError

from muse_stream.defaults import SHADOW_BUDGET_MS
from muse_stream.errors import validation_problems
from muse_stream.events import (
    MAX_EVENT_BYTES,
    InputEvent,
    RejectReason,
    well_formed_event,
    well_formed_events,
)
from muse_stream.predictors import Predictor, ScoreBatch
from muse_stream.routing import RoutingError, UnknownTenant
from muse_stream.topics import TopicNames

logger = logging.getLogger(__name__)


class RoutingDecisionLike(Protocol):
    # Read-only, so that frozen decisions (routing.RoutingDecision) meet it.
    @property
    def intent(self) -> str: ...
    @property
    def live(self) -> Predictor: ...
    @property
    def shadows(self) -> tuple[Predictor, ...]: ...
    @property
    def config_version(self) -> int: ...


class SnapshotLike(Protocol):
    version: int

    def route(self, tenant: str, intent: str | None) -> RoutingDecisionLike: ...


class SourceRecord(NamedTuple):
    """An input record and where it came from; `tenant` is derived from `topic` by the caller.
    (A NamedTuple: built once per event on the hot path, it costs a third of a frozen dataclass.)"""

    tenant: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class OutgoingRecord(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


class ScoreListener(Protocol):
    """Told every batch of scores a :class:`BatchScorer` computes, with all three stages: a replay
    records raw and corrected scores with it, which the result records do not carry. ``role`` is
    ``"live"`` or ``"shadow"``; ``records``, ``event_ids`` and ``intents`` are in the order of ``scores``."""

    def __call__(
        self,
        role: str,
        predictor: Predictor,
        records: Sequence[SourceRecord],
        event_ids: Sequence[str],
        intents: Sequence[str],
        scores: ScoreBatch,
    ) -> None: ...


@dataclass
class BatchOutcome:
    results: list[OutgoingRecord] = field(default_factory=list)
    dead_letters: list[OutgoingRecord] = field(default_factory=list)
    shadows: list[OutgoingRecord] = field(default_factory=list)


class Scorer(Protocol):
    """What the worker needs of a scorer: a batch scored against one snapshot, and named counters
    for its periodic log line. BatchScorer is the real one; the benchmarks' pass-through is another."""

    def score(self, records: Sequence[SourceRecord], snapshot: SnapshotLike) -> BatchOutcome: ...

    def counters(self) -> Mapping[str, int]: ...


@dataclass(slots=True)
class _Group:
    """The events of one batch that one live predictor scores, in input order."""

    predictor: Predictor
    records: list[SourceRecord] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[RoutingDecisionLike] = field(default_factory=list)
    live_scores: list[float] | None = None

    def keep(self, indices: list[int]) -> None:
        self.records = [self.records[i] for i in indices]
        self.event_ids = [self.event_ids[i] for i in indices]
        self.features = [self.features[i] for i in indices]
        self.decisions = [self.decisions[i] for i in indices]


@dataclass
class ShadowGuard:
    """Keeps shadows from hurting live traffic: a shadow that raises, or that takes longer than
    `budget_ms` for a batch, is skipped for `cooldown_s`. Live results never wait on a skipped shadow."""

    budget_ms: float = SHADOW_BUDGET_MS
    cooldown_s: float = 30.0
    disabled_until: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped_events: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def allows(self, predictor_id: str) -> bool:
        return time.monotonic() >= self.disabled_until.get(predictor_id, 0.0)

    def trip(self, predictor_id: str) -> None:
        self.failures[predictor_id] += 1
        self.disabled_until[predictor_id] = time.monotonic() + self.cooldown_s


# Columns of a batch's records, read by C-level maps on the hot path.
_TENANT = operator.itemgetter(0)
_TIMESTAMP = operator.itemgetter(4)
_KEY = operator.itemgetter(5)
_VALUE = operator.itemgetter(6)
_INTENT = operator.attrgetter("intent")
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_new_outgoing = functools.partial(tuple.__new__, OutgoingRecord)  # OutgoingRecord from a tuple, no Python frame


def _literal(part: bytes) -> bytes:
    """A fixed part of a %-template: its own % signs escaped."""
    return part.replace(b"%", b"%%")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


class BatchScorer:
    """Turns input records into result, dead-letter and shadow records for one snapshot."""

    def __init__(
        self,
        names: TopicNames,
        *,
        shadow_guard: ShadowGuard | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        listener: ScoreListener | None = None,
        emit_scores: bool = True,
    ) -> None:
        """``emit_scores=False`` (only with a ``listener``) leaves out the result and shadow records:
        a replay takes the scores as columns from its listener, and serializing records it would drop
        cost it a tenth of its time. Everything else, dead letters included, is computed as usual."""
        if not emit_scores and listener is None:
            raise ValueError("emit_scores=False needs a listener: the scores would go nowhere")
        self.names = names
        self.shadow_guard = shadow_guard or ShadowGuard()
        self.max_event_bytes = max_event_bytes
        self.listener = listener  # None in workers: one attribute test per predictor and batch
        self.emit_scores = emit_scores

    def counters(self) -> dict[str, int]:
        """Per shadow predictor (id shortened): times its guard tripped, and events it skipped."""
        guard = self.shadow_guard
        counts: dict[str, int] = {}
        for shadow_id in sorted(set(guard.failures) | set(guard.skipped_events)):
            counts[f"shadow.{shadow_id[:12]}.trips"] = guard.failures.get(shadow_id, 0)
            counts[f"shadow.{shadow_id[:12]}.skipped"] = guard.skipped_events.get(shadow_id, 0)
        return counts

    def score(self, records: Sequence[SourceRecord], snapshot: SnapshotLike) -> BatchOutcome:
        """Every step works on the whole batch. A batch of ordinary events (the usual case) is
        decoded and checked a column at a time (:func:`well_formed_events`); any other batch event by
        event, with pydantic for the unusual ones. Then one routing decision per (tenant, intent),
        one matrix and one inplace_predict per live predictor, results formatted from per-(tenant,
        intent) templates."""
        now_ms = int(time.time() * 1000)
        outcome = BatchOutcome()
        version = snapshot.version
        columns = self._decode_clean(records)
        if columns is None:
            groups = self._parse_each(records, snapshot, version, now_ms, outcome.dead_letters)
        else:
            groups = self._route_clean(records, *columns, snapshot, version, now_ms, outcome.dead_letters)
        for group in groups.values():
            self._score_live(group, version, outcome, now_ms)
        self._score_shadows(groups, version, outcome)
        return outcome

    def _decode_clean(
        self,
        records: Sequence[SourceRecord],
    ) -> tuple[list[str], list[str | None], list[dict[str, Any]]] | None:
        """The batch's columns if every record is a non-empty, not oversized, well-formed event;
        else None (the caller then takes each record on its own and dead-letters the bad ones)."""
        values = list(map(_VALUE, records))
        try:
            if not values or min(map(len, values)) == 0 or max(map(len, values)) > self.max_event_bytes:
                return None
            payloads = list(map(orjson.loads, values))
        except (TypeError, orjson.JSONDecodeError):  # a None value; not JSON
            return None
        return well_formed_events(payloads)

    def _route_clean(
        self,
        records: Sequence[SourceRecord],
        event_ids: list[str],
        intents: list[str | None],
        features: list[dict[str, Any]],
        snapshot: SnapshotLike,
        version: int,
        now_ms: int,
        dead_letters: list[OutgoingRecord],
    ) -> dict[str, _Group]:
        """Groups of a clean batch, whole columns at a time when it has one (tenant, intent)."""
        tenants = list(map(_TENANT, records))
        pairs = set(zip(tenants, intents))
        if len(pairs) == 1:
            ((tenant, intent),) = pairs
            only = self._route(snapshot, tenant, intent)
            if isinstance(only, tuple):
                dead_letters.extend(self._dead_letter(r, only[0], only[1], version, now_ms) for r in records)
                return {}
            return {only.live.id: _Group(only.live, list(records), event_ids, features, [only] * len(records))}
        groups: dict[str, _Group] = {}
        routes: dict[tuple[str, str | None], RoutingDecisionLike | tuple[RejectReason, str]] = {}
        for record, tenant, event_id, intent, event_features in zip(records, tenants, event_ids, intents, features):
            decision = routes.get((tenant, intent))
            if decision is None:
                decision = routes[(tenant, intent)] = self._route(snapshot, tenant, intent)
            if isinstance(decision, tuple):
                dead_letters.append(self._dead_letter(record, decision[0], decision[1], version, now_ms))
                continue
            live = decision.live
            group = groups.get(live.id)
            if group is None:
                group = groups[live.id] = _Group(live)
            group.records.append(record)
            group.event_ids.append(event_id)
            group.features.append(event_features)
            group.decisions.append(decision)
        return groups

    def _parse_each(
        self,
        records: Sequence[SourceRecord],
        snapshot: SnapshotLike,
        version: int,
        now_ms: int,
        dead_letters: list[OutgoingRecord],
    ) -> dict[str, _Group]:
        """Groups of a batch with at least one unusual record, event by event: parse + a C-speed
        validity check per event (pydantic only for the unusual ones)."""
        groups: dict[str, _Group] = {}
        routes: dict[tuple[str, str | None], RoutingDecisionLike | tuple[RejectReason, str]] = {}
        loads, max_bytes = orjson.loads, self.max_event_bytes
        for record in records:
            value = record.value
            if not value:
                dead_letters.append(
                    self._dead_letter(
                        record, RejectReason.EMPTY, "the record has no value; send a JSON event object", version, now_ms
                    )
                )
                continue
            if len(value) > max_bytes:
                dead_letters.append(
                    self._dead_letter(
                        record,
                        RejectReason.OVERSIZED,
                        f"the record is {len(value)} bytes, over the limit of {max_bytes}; send fewer or shorter features",
                        version,
                        now_ms,
                    )
                )
                continue
            try:
                payload = loads(value)
            except orjson.JSONDecodeError as error:
                dead_letters.append(
                    self._dead_letter(record, RejectReason.MALFORMED_JSON, f"not valid JSON: {error}", version, now_ms)
                )
                continue
            event = well_formed_event(payload) if type(payload) is dict else None
            if event is None:
                event = self._validate(record, payload, version, now_ms, dead_letters)
                if event is None:
                    continue
            event_id, intent, features = event
            route_key = (record.tenant, intent)
            decision = routes.get(route_key)
            if decision is None:
                decision = routes[route_key] = self._route(snapshot, record.tenant, intent)
            if isinstance(decision, tuple):
                dead_letters.append(self._dead_letter(record, decision[0], decision[1], version, now_ms))
                continue
            live = decision.live
            group = groups.get(live.id)
            if group is None:
                group = groups[live.id] = _Group(live)
            group.records.append(record)
            group.event_ids.append(event_id)
            group.features.append(features)
            group.decisions.append(decision)
        return groups

    # -- steps ---------------------------------------------------------------------------------

    def _validate(
        self, record: SourceRecord, payload: Any, version: int, now_ms: int, dead_letters: list[OutgoingRecord]
    ) -> tuple[str, str | None, dict[str, Any]] | None:
        """The slow path, for anything :func:`well_formed_event` did not vouch for: pydantic decides."""
        if not isinstance(payload, dict):
            dead_letters.append(
                self._dead_letter(
                    record,
                    RejectReason.NOT_AN_OBJECT,
                    f"the JSON value is a {type(payload).__name__}, not an object",
                    version,
                    now_ms,
                )
            )
            return None
        try:
            event = InputEvent.model_validate(payload)
        except ValidationError as error:
            problems = validation_problems(error, limit=5)
            dead_letters.append(
                self._dead_letter(
                    record,
                    RejectReason.SCHEMA_VIOLATION,
                    f"the event does not match the input schema: {problems}",
                    version,
                    now_ms,
                )
            )
            return None
        return event.event_id, event.intent, event.features

    @staticmethod
    def _route(snapshot: SnapshotLike, tenant: str, intent: str | None) -> RoutingDecisionLike | tuple[RejectReason, str]:
        try:
            return snapshot.route(tenant, intent)
        except UnknownTenant as error:
            return RejectReason.UNKNOWN_TENANT, str(error)
        except RoutingError as error:
            return RejectReason.UNKNOWN_INTENT, str(error)

    def _score_live(self, group: _Group, config_version: int, outcome: BatchOutcome, now_ms: int) -> None:
        predictor = group.predictor
        try:
            mapped = self._score_group(group, outcome, config_version, now_ms)
        except Exception as error:  # noqa: BLE001 - a failing model must not stop the pipeline
            logger.exception("predictor %s failed on a batch of %d events", predictor, len(group.records))
            for record in group.records:
                outcome.dead_letters.append(
                    self._dead_letter(
                        record,
                        RejectReason.SCORING_FAILED,
                        f"predictor {predictor.name}:{predictor.version} failed: {error}; the operator should check it",
                        config_version,
                        now_ms,
                    )
                )
            return
        group.live_scores = mapped
        if not mapped or not self.emit_scores:
            return
        # Each result is orjson.dumps of the ScoreResult dict, byte for byte, assembled from parts:
        # one %-template per (tenant, intent) holds everything but the event id, score and
        # timestamp, the scores are serialized in one call, and the records are formatted and built
        # by C-level maps (no Python code per event).
        dumps = orjson.dumps
        tail = (
            b',"predictor_id":'
            + dumps(predictor.id)
            + b',"predictor_name":'
            + dumps(predictor.name)
            + b',"predictor_version":'
            + dumps(predictor.version)
            + b',"config_version":'
            + dumps(config_version)
            + b',"timings":{"event_timestamp_ms":'
        )
        end = b',"scored_at_ms":' + dumps(now_ms) + b',"batch_size":' + dumps(len(mapped)) + b"}}"
        pairs = list(zip(map(_TENANT, group.records), map(_INTENT, group.decisions)))
        templates = {
            (tenant, intent): (
                b'{"event_id":%b'
                + _literal(b',"tenant":' + dumps(tenant) + b',"intent":' + dumps(intent) + b',"score":')
                + b"%b"
                + _literal(tail)
                + b"%d"
                + _literal(end),
                self.names.output_topic(tenant),
            )
            for tenant, intent in set(pairs)
        }
        chosen = list(map(templates.__getitem__, pairs))
        values = map(
            bytes.__mod__,
            map(_FIRST, chosen),
            zip(map(dumps, group.event_ids), dumps(mapped)[1:-1].split(b","), map(_TIMESTAMP, group.records)),
        )
        outcome.results.extend(map(_new_outgoing, zip(map(_SECOND, chosen), map(_KEY, group.records), values)))

    def _score_group(self, group: _Group, outcome: BatchOutcome, config_version: int, now_ms: int) -> list[float]:
        """Mapped scores of a group, in one matrix and one predict call. Rows the predictor cannot
        take (a feature missing under a reject policy, a value beyond the float32 range the model
        reads) go to the DLQ alone; the rest of the batch is scored as usual."""
        predictor = group.predictor
        matrix = predictor.vectorize(group.features, allow_missing=True)
        infinite = np.isinf(matrix).any(axis=1)
        incomplete = np.isnan(matrix).any(axis=1) if predictor.rejects_missing else None
        unusable = infinite if incomplete is None else infinite | incomplete
        if unusable.any():
            for index in np.flatnonzero(unusable).tolist():
                if infinite[index]:
                    names = [predictor.feature_names[c] for c in np.flatnonzero(np.isinf(matrix[index]))]
                    reason, text = (
                        RejectReason.FEATURE_OUT_OF_RANGE,
                        (
                            f"feature(s) {', '.join(map(repr, names))} exceed the float32 range the model reads "
                            f"(|x| > 3.4e38); send finite values within it"
                        ),
                    )
                else:
                    reason, text = (
                        RejectReason.MISSING_FEATURE,
                        (
                            f"predictor {predictor.name}:{predictor.version} rejects missing features: the event lacks "
                            f"{', '.join(map(repr, predictor.missing_features(matrix[index])))}; "
                            "send every feature the intent's predictor needs"
                        ),
                    )
                outcome.dead_letters.append(self._dead_letter(group.records[index], reason, text, config_version, now_ms))
            kept = np.flatnonzero(~unusable)
            group.keep(kept.tolist())
            if not kept.size:
                return []
            matrix = matrix[kept]
        scores = predictor.score_batch(matrix)
        if self.listener is not None:
            self.listener("live", predictor, group.records, group.event_ids, [d.intent for d in group.decisions], scores)
        return scores.mapped.tolist()

    def _score_shadows(self, groups: dict[str, _Group], config_version: int, outcome: BatchOutcome) -> None:
        # shadow id -> (shadow, [(group, index in group)]): only events with a live score
        by_shadow: dict[str, tuple[Any, list[tuple[_Group, int]]]] = {}
        for group in groups.values():
            if not group.live_scores:  # went to the DLQ: nothing to compare against
                continue
            for index, decision in enumerate(group.decisions):
                for shadow in decision.shadows:
                    by_shadow.setdefault(shadow.id, (shadow, []))[1].append((group, index))
        guard = self.shadow_guard
        for shadow_id, (shadow, members) in by_shadow.items():
            if not guard.allows(shadow_id):
                guard.skipped_events[shadow_id] += len(members)
                continue
            started = time.monotonic()
            try:
                scores = shadow.score_batch(shadow.vectorize([group.features[i] for group, i in members]))
            except Exception:  # noqa: BLE001 - a failing shadow never touches live results
                logger.warning("shadow predictor %s failed; skipping it for %.0f s", shadow, guard.cooldown_s, exc_info=True)
                guard.trip(shadow_id)
                guard.skipped_events[shadow_id] += len(members)
                continue
            if (time.monotonic() - started) * 1000 > guard.budget_ms:
                logger.warning(
                    "shadow predictor %s exceeded its %.0f ms budget; skipping it for %.0f s",
                    shadow,
                    guard.budget_ms,
                    guard.cooldown_s,
                )
                guard.trip(shadow_id)
            if self.listener is not None:
                self.listener(
                    "shadow",
                    shadow,
                    [group.records[i] for group, i in members],
                    [group.event_ids[i] for group, i in members],
                    [group.decisions[i].intent for group, i in members],
                    scores,
                )
            if not self.emit_scores:
                continue
            for (group, i), raw, corrected, mapped in zip(
                members, scores.raw.tolist(), scores.corrected.tolist(), scores.mapped.tolist(), strict=True
            ):
                decision = group.decisions[i]
                record = group.records[i]
                shadow_result = {
                    "event_id": group.event_ids[i],
                    "tenant": record.tenant,
                    "intent": decision.intent,
                    "live_predictor_id": decision.live.id,
                    "live_score": group.live_scores[i],  # type: ignore[index]
                    "predictor_id": shadow.id,
                    "predictor_name": shadow.name,
                    "predictor_version": shadow.version,
                    "raw_score": raw,
                    "corrected_score": corrected,
                    "score": mapped,
                    "config_version": config_version,
                }
                outcome.shadows.append(OutgoingRecord(self.names.shadow_topic, record.key, orjson.dumps(shadow_result)))

    def _dead_letter(
        self, record: SourceRecord, reason: RejectReason, text: str, config_version: int, now_ms: int
    ) -> OutgoingRecord:
        letter = {
            "tenant": record.tenant,
            "reason_code": reason.value,
            "reason": text,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
            },
            "original_key_b64": _b64(record.key),
            "original_value_b64": _b64(record.value),
            "config_version": config_version,
            "failed_at_ms": now_ms,
        }
        return OutgoingRecord(self.names.dlq_topic(record.tenant), record.key, orjson.dumps(letter))
