"""Pure batch scoring: one outgoing tenant record per input record, bad input dead-lettered."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import orjson
import pytest

from muse_stream.events import DeadLetter, RejectReason, ScoreResult, ShadowResult
from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard, SourceRecord
from muse_stream.predictors import Predictor
from muse_stream.routing import UnknownIntent
from muse_stream.synthetic import FEATURE_NAMES, events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.poison import POISON, STRICT_INTENT

NAMES = TopicNames("unit")


@dataclass(frozen=True)
class Decision:
    intent: str
    live: Predictor
    shadows: tuple[Predictor, ...]
    config_version: int


@dataclass
class StaticSnapshot:
    """The routing part of a config snapshot, fixed: intent -> (live, shadows)."""

    version: int
    routes: dict[str, tuple[Predictor, tuple[Predictor, ...]]]
    default_intent: str = "card-fraud"

    def route(self, tenant: str, intent: str | None) -> Decision:
        intent = intent or self.default_intent
        if intent not in self.routes:
            raise UnknownIntent(f"tenant {tenant!r} has no route for intent {intent!r}")
        live, shadows = self.routes[intent]
        return Decision(intent, live, shadows, self.version)


def _records(tenant: str, values: list[bytes | None]) -> list[SourceRecord]:
    topic = NAMES.input_topic(tenant)
    return [
        SourceRecord(tenant, topic, 0, offset, 1_700_000_000_000 + offset, f"k{offset}".encode(), value)
        for offset, value in enumerate(values)
    ]


def _events(n: int, seed: int = 3) -> tuple[np.ndarray, list[bytes]]:
    X, _ = generate_events(n, seed=seed)
    values = [
        orjson.dumps({"event_id": f"e{i}", "intent": "card-fraud", "features": features, "tenant": "someone-else"})
        for i, features in enumerate(events_as_dicts(X))
    ]
    return X, values


def test_every_event_gets_the_score_the_predictor_computes_offline(predictors: dict[str, Predictor]) -> None:
    X, values = _events(300)
    snapshot = StaticSnapshot(4, {"card-fraud": (predictors["v1"], ())})
    outcome = BatchScorer(NAMES).score(_records("bank-a", values), snapshot)
    assert not outcome.dead_letters and not outcome.shadows
    results = [ScoreResult.model_validate_json(r.value) for r in outcome.results]
    assert [r.event_id for r in results] == [f"e{i}" for i in range(300)]
    expected = predictors["v1"].score_batch(X).mapped
    assert np.array_equal(np.array([r.score for r in results]), expected)
    assert {r.tenant for r in results} == {"bank-a"}  # the payload's "tenant" has no effect
    assert {o.topic for o in outcome.results} == {NAMES.output_topic("bank-a")}
    assert [o.key for o in outcome.results] == [f"k{i}".encode() for i in range(300)]
    assert {(r.predictor_id, r.config_version) for r in results} == {(predictors["v1"].id, 4)}


def test_shadows_score_the_same_events_on_the_shadow_topic_only(predictors: dict[str, Predictor]) -> None:
    X, values = _events(100)
    snapshot = StaticSnapshot(2, {"card-fraud": (predictors["v1"], (predictors["v2"],))})
    outcome = BatchScorer(NAMES).score(_records("bank-a", values), snapshot)
    assert len(outcome.results) == 100 and len(outcome.shadows) == 100
    assert {o.topic for o in outcome.shadows} == {NAMES.shadow_topic}
    shadows = [ShadowResult.model_validate_json(r.value) for r in outcome.shadows]
    assert np.array_equal([s.score for s in shadows], predictors["v2"].score_batch(X).mapped)
    live = [ScoreResult.model_validate_json(r.value).score for r in outcome.results]
    assert [s.live_score for s in shadows] == live


def test_a_failing_shadow_changes_no_live_result_and_is_skipped_for_a_while(predictors: dict[str, Predictor]) -> None:
    class BrokenShadow:
        id, name, version = "broken", "broken", "1"

        def vectorize(self, records: object) -> object:
            raise RuntimeError("model server on fire")

    _, values = _events(50)
    healthy = BatchScorer(NAMES).score(_records("bank-a", values), StaticSnapshot(1, {"card-fraud": (predictors["v1"], ())}))
    guard = ShadowGuard(cooldown_s=60)
    scorer = BatchScorer(NAMES, shadow_guard=guard)
    snapshot = StaticSnapshot(1, {"card-fraud": (predictors["v1"], (BrokenShadow(),))})  # type: ignore[arg-type]
    outcome = scorer.score(_records("bank-a", values), snapshot)
    assert [r.value for r in outcome.results] != [] and not outcome.shadows
    strip = lambda rs: [orjson.loads(r.value) | {"timings": None} for r in rs]  # noqa: E731
    assert strip(outcome.results) == strip(healthy.results)
    assert guard.failures["broken"] == 1 and not guard.allows("broken")
    scorer.score(_records("bank-a", values), snapshot)
    assert guard.failures["broken"] == 1 and guard.skipped_events["broken"] == 100


@pytest.mark.parametrize(("kind", "value", "reason"), POISON, ids=[p[0] for p in POISON])
def test_each_kind_of_bad_record_is_dead_lettered_with_its_bytes_and_position(
    predictors: dict[str, Predictor], kind: str, value: bytes | None, reason: RejectReason
) -> None:
    _, good = _events(4)
    snapshot = StaticSnapshot(3, {"card-fraud": (predictors["v1"], ()), STRICT_INTENT: (predictors["strict"], ())})
    records = _records("bank-b", [good[0], value, good[1]])
    outcome = BatchScorer(NAMES).score(records, snapshot)
    assert [orjson.loads(r.value)["event_id"] for r in outcome.results] == ["e0", "e1"]
    assert len(outcome.dead_letters) == 1
    letter = DeadLetter.model_validate_json(outcome.dead_letters[0].value)
    assert outcome.dead_letters[0].topic == NAMES.dlq_topic("bank-b")
    assert letter.reason_code is reason, letter.reason
    assert letter.source.topic == NAMES.input_topic("bank-b") and letter.source.offset == 1
    original = None if letter.original_value_b64 is None else base64.b64decode(letter.original_value_b64)
    assert original == (value or (b"" if value == b"" else None))
    assert letter.reason


def test_poison_corpus_covers_at_least_twenty_kinds() -> None:
    assert len(POISON) >= 20
    assert len({reason for _, _, reason in POISON}) >= 7


def test_missing_features_pass_as_missing_under_the_lenient_policy(predictors: dict[str, Predictor]) -> None:
    features = {name: 0.1 for name in FEATURE_NAMES[2:]}
    # A feature the model does not know is ignored.
    value = orjson.dumps({"event_id": "gappy", "features": {**features, "not_a_model_feature": 9.0}})
    outcome = BatchScorer(NAMES).score(_records("bank-a", [value]), StaticSnapshot(1, {"card-fraud": (predictors["v1"], ())}))
    assert len(outcome.results) == 1 and not outcome.dead_letters
    expected = predictors["v1"].score_records([features]).mapped[0]
    assert ScoreResult.model_validate_json(outcome.results[0].value).score == expected


def test_incomplete_events_under_a_reject_policy_cost_one_predict_call_and_are_named(
    predictors: dict[str, Predictor], monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = predictors["strict"]
    X, values = _events(200)
    values = [orjson.loads(v) | {"intent": STRICT_INTENT} for v in values]
    for index in (3, 150):
        values[index]["features"].pop("amount_log")
    calls: list[int] = []
    real_score_batch = strict.score_batch
    monkeypatch.setattr(strict, "score_batch", lambda matrix: calls.append(len(matrix)) or real_score_batch(matrix))
    snapshot = StaticSnapshot(1, {STRICT_INTENT: (strict, ())})
    outcome = BatchScorer(NAMES).score(_records("bank-a", [orjson.dumps(v) for v in values]), snapshot)
    assert calls == [198]  # one call for the whole batch, not one per event
    letters = [DeadLetter.model_validate_json(r.value) for r in outcome.dead_letters]
    assert [letter.source.offset for letter in letters] == [3, 150]
    assert all("lacks 'amount_log'" in letter.reason for letter in letters)
    kept = np.delete(X, [3, 150], axis=0)
    assert np.array_equal(
        [ScoreResult.model_validate_json(r.value).score for r in outcome.results], real_score_batch(kept).mapped
    )


def test_a_slow_shadow_delays_live_results_by_at_most_one_batch(predictors: dict[str, Predictor]) -> None:
    import time

    class SlowShadow:
        id, name, version = "slow", "slow", "1"

        def vectorize(self, records: object) -> object:
            time.sleep(0.2)
            return predictors["v2"].vectorize(records)  # type: ignore[arg-type]

        def score_batch(self, matrix: object) -> object:
            return predictors["v2"].score_batch(matrix)  # type: ignore[arg-type]

    _, values = _events(50)
    guard = ShadowGuard(budget_ms=50, cooldown_s=60)
    scorer = BatchScorer(NAMES, shadow_guard=guard)
    snapshot = StaticSnapshot(1, {"card-fraud": (predictors["v1"], (SlowShadow(),))})  # type: ignore[arg-type]
    first = scorer.score(_records("bank-a", values), snapshot)
    assert len(first.shadows) == 50 and guard.failures["slow"] == 1  # over budget: scored, then tripped
    started = time.monotonic()
    second = scorer.score(_records("bank-a", values), snapshot)
    assert time.monotonic() - started < 0.15 and not second.shadows and len(second.results) == 50
