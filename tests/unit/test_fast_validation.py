"""The scorer's fast paths keep InputEvent's semantics and the result bytes of orjson.dumps."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from muse_stream.events import InputEvent, RejectReason, well_formed_event
from muse_stream.pipeline.scoring import BatchScorer, SourceRecord
from muse_stream.synthetic import FEATURE_NAMES
from muse_stream.topics import TopicNames
from tests.support.poison import POISON

_names = st.one_of(st.sampled_from(FEATURE_NAMES), st.text(max_size=3),
                   st.text(min_size=126, max_size=131))
_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**63, 2**63 - 1), st.none(),
                    st.booleans(), st.text(max_size=4), st.lists(st.integers(-9, 9), max_size=2))
_payloads = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(max_size=3), st.text(min_size=126, max_size=131), st.integers(-9, 9), st.none()),
        "intent": st.one_of(st.text(max_size=3), st.text(min_size=62, max_size=66), st.none(), st.integers(-9, 9)),
        "features": st.one_of(st.dictionaries(_names, _values, max_size=6), st.lists(st.floats(), max_size=2),
                              st.none()),
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


@pytest.mark.parametrize(("kind", "value", "reason"), [p for p in POISON if p[2] is RejectReason.SCHEMA_VIOLATION],
                         ids=[p[0] for p in POISON if p[2] is RejectReason.SCHEMA_VIOLATION])
def test_every_schema_violation_of_the_poison_corpus_takes_the_pydantic_path(kind: str, value: bytes,
                                                                              reason: RejectReason) -> None:
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
    records = [SourceRecord("bank-a", names.input_topic("bank-a"), 0, i, 1_700_000_000_000 + i, None, v)
               for i, v in enumerate(values)]
    outcome = BatchScorer(names).score(records, StaticSnapshot(3, {"card-fraud": (predictor, ())}))
    assert len(outcome.results) == 50
    for result in outcome.results:
        assert orjson.dumps(orjson.loads(result.value)) == result.value
        assert list(orjson.loads(result.value)) == ["event_id", "tenant", "intent", "score", "predictor_id",
                                                    "predictor_name", "predictor_version", "config_version", "timings"]
