"""The scorer's fast paths keep InputEvent's semantics and the result bytes of orjson.dumps."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from muse_stream.events import InputEvent, RejectReason, well_formed_event, well_formed_events
from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard, SourceRecord
from muse_stream.synthetic import FEATURE_NAMES
from muse_stream.topics import TopicNames
from tests.support.poison import POISON

_names = st.one_of(st.sampled_from(FEATURE_NAMES), st.text(max_size=3), st.text(min_size=126, max_size=131))
_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.integers(-9, 9), max_size=2),
)
_payloads = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(max_size=3), st.text(min_size=126, max_size=131), st.integers(-9, 9), st.none()),
        "intent": st.one_of(st.text(max_size=3), st.text(min_size=62, max_size=66), st.none(), st.integers(-9, 9)),
        "features": st.one_of(st.dictionaries(_names, _values, max_size=6), st.lists(st.floats(), max_size=2), st.none()),
        "tenant": st.text(max_size=5),
    },
)


@settings(max_examples=600, deadline=None)
@given(_payloads)
def test_the_fast_check_accepts_only_what_input_event_accepts_and_reads_it_the_same(payload: dict) -> None:
    parsed = orjson.loads(orjson.dumps(payload))  # the scorer's input always comes from orjson
    fast = well_formed_event(parsed)
    if fast is None:
        return  # the scorer asks pydantic: same answer by construction
    event = InputEvent.model_validate(parsed)
    assert fast == (event.event_id, event.intent, event.features)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [p for p in POISON if p[2] is RejectReason.SCHEMA_VIOLATION],
    ids=[p[0] for p in POISON if p[2] is RejectReason.SCHEMA_VIOLATION],
)
def test_every_schema_violation_of_the_poison_corpus_takes_the_pydantic_path(
    kind: str, value: bytes, reason: RejectReason
) -> None:
    payload = orjson.loads(value)
    assert well_formed_event(payload) is None
    with pytest.raises(ValidationError):
        InputEvent.model_validate(payload)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_orjson_never_yields_a_non_finite_float_which_the_fast_check_relies_on(literal: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b'{"v": %b}' % literal)


def test_results_are_byte_for_byte_what_orjson_dumps_of_the_result_dict_gives(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.predictors import small_predictor
    from tests.unit.test_batch_scoring import StaticSnapshot, _events

    predictor = small_predictor(tmp_path)
    names = TopicNames("unit")
    _, values = _events(50)
    records = [
        SourceRecord("bank-a", names.input_topic("bank-a"), 0, i, 1_700_000_000_000 + i, None, v) for i, v in enumerate(values)
    ]
    outcome = BatchScorer(names).score(records, StaticSnapshot(3, {"card-fraud": (predictor, ())}))
    assert len(outcome.results) == 50
    for result in outcome.results:
        assert orjson.dumps(orjson.loads(result.value)) == result.value
        assert list(orjson.loads(result.value)) == [
            "event_id",
            "tenant",
            "intent",
            "score",
            "predictor_id",
            "predictor_name",
            "predictor_version",
            "config_version",
            "timings",
        ]


_well_formed = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=8),
        "features": st.dictionaries(st.sampled_from(FEATURE_NAMES), st.floats(-1e6, 1e6), max_size=4),
    },
    optional={"intent": st.one_of(st.none(), st.text(min_size=1, max_size=3))},
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_well_formed, _payloads), max_size=6))
def test_the_batch_check_vouches_for_a_batch_exactly_when_the_event_check_vouches_for_each(payloads: list) -> None:
    parsed = [orjson.loads(orjson.dumps(p)) for p in payloads]
    each = [well_formed_event(p) if type(p) is dict else None for p in parsed]
    columns = well_formed_events(parsed)
    if parsed and all(e is not None for e in each):
        assert columns == ([e[0] for e in each], [e[1] for e in each], [e[2] for e in each])  # type: ignore[index]
    else:
        assert columns is None


def _mixed_clean_batch(n: int) -> list[SourceRecord]:
    """Well-formed events over two tenants and four intents (one unknown, one with a reject policy
    and events missing features, one with a percent sign), ids with quotes, percent signs and
    non-ASCII characters."""
    from muse_stream.synthetic import events_as_dicts, generate_events
    from tests.support.poison import STRICT_INTENT

    X, _ = generate_events(n, seed=5)
    names = TopicNames("unit")
    records = []
    for i, features in enumerate(events_as_dicts(X)):
        tenant = ("bank-a", "bank-b")[i % 2]
        intent = (None, "card-fraud", STRICT_INTENT, "no-such-intent", "fraud%d%%")[i % 5 if i % 7 else 1]
        if i % 3 == 0:
            features.pop(FEATURE_NAMES[i % len(FEATURE_NAMES)])
        event = {"event_id": f'e{i}%d"é\\,"', "features": features}
        if intent is not None:
            event["intent"] = intent
        records.append(
            SourceRecord(
                tenant,
                names.input_topic(tenant),
                i % 3,
                i,
                1_700_000_000_000 + i,
                None if i % 6 == 0 else f"k{i}".encode(),
                orjson.dumps(event),
            )
        )
    return records


@pytest.mark.parametrize("shape", ["mixed", "one tenant and intent"])
def test_a_clean_batch_taken_as_columns_gives_the_bytes_of_the_event_by_event_path(
    predictors: dict, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    from muse_stream.pipeline import scoring
    from tests.support.poison import STRICT_INTENT
    from tests.unit.test_batch_scoring import StaticSnapshot

    monkeypatch.setattr(scoring.time, "time", lambda: 1_800_000_000.0)  # the same scored_at_ms in both runs
    snapshot = StaticSnapshot(
        7,
        {
            "card-fraud": (predictors["v1"], (predictors["v2"],)),
            STRICT_INTENT: (predictors["strict"], ()),
            "fraud%d%%": (predictors["v1"], ()),
        },
    )
    clean = _mixed_clean_batch(120)
    if shape != "mixed":
        clean = [r for r in clean if r.tenant == "bank-b" and b'"intent"' not in r.value]
    names = TopicNames("unit")
    # One empty record sends the whole batch down the event-by-event path; it only adds a dead letter.
    poison = SourceRecord("bank-a", names.input_topic("bank-a"), 0, 999, 1_700_000_000_999, b"k", b"")
    columns = BatchScorer(names, shadow_guard=ShadowGuard(budget_ms=1e9)).score(clean, snapshot)
    each = BatchScorer(names, shadow_guard=ShadowGuard(budget_ms=1e9)).score(clean + [poison], snapshot)
    assert columns.shadows, "the shadow scored"
    assert columns.results and columns.results == each.results
    assert all(type(r) is scoring.OutgoingRecord for r in columns.results)
    assert columns.shadows == each.shadows
    poison_letters = [d for d in each.dead_letters if orjson.loads(d.value)["source"]["offset"] == 999]
    assert len(poison_letters) == 1
    assert columns.dead_letters == [d for d in each.dead_letters if d not in poison_letters]
    if shape == "mixed":
        reasons = {orjson.loads(d.value)["reason_code"] for d in columns.dead_letters}
        assert reasons == {RejectReason.UNKNOWN_INTENT.value, RejectReason.MISSING_FEATURE.value}


_GOOD = {"event_id": "e1", "intent": "card-fraud", "features": {"amount_log": 1.5, "is_foreign": 1}}
_ONE_DEFECT = [
    {**_GOOD, "event_id": ""},
    {**_GOOD, "event_id": "x" * 129},
    {**_GOOD, "event_id": 7},
    {**_GOOD, "intent": ""},
    {**_GOOD, "intent": "x" * 65},
    {**_GOOD, "intent": 3},
    {**_GOOD, "features": []},
    {**_GOOD, "features": {"": 1.0}},
    {**_GOOD, "features": {"x" * 129: 1.0}},
    {**_GOOD, "features": {f"f{i}": 1.0 for i in range(1025)}},
    {**_GOOD, "features": {"a": True}},
    {**_GOOD, "features": {"a": "1.5"}},
    {**_GOOD, "features": {"a": [1]}},
    [_GOOD],
    "e1",
]


@pytest.mark.parametrize("defect", _ONE_DEFECT + [orjson.loads(p[1]) for p in POISON if p[2] is RejectReason.SCHEMA_VIOLATION])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_one_event_the_event_check_refuses_makes_the_batch_check_refuse_the_batch(defect: object, position: int) -> None:
    assert (well_formed_event(defect) if type(defect) is dict else None) is None
    batch = [orjson.loads(orjson.dumps(_GOOD)) for _ in range(2)]
    batch.insert(position, orjson.loads(orjson.dumps(defect)))
    assert well_formed_events(batch) is None
    assert well_formed_events([b for i, b in enumerate(batch) if i != position]) is not None
