"""The replay's pure parts: the scorer's listener hook (no output byte changes), the dataset rows,
configs rebuilt from history, windows and progress lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from muse_stream.config.deployment import TenantConfig
from muse_stream.events import LabelRecord, ScoreResult, ShadowResult
from muse_stream.pipeline import scoring
from muse_stream.pipeline.scoring import BatchScorer
from muse_stream.predictors import Predictor
from muse_stream.replay.configs import (
    ConfigChoice,
    ReplayConfigError,
    check_tags,
)
from muse_stream.replay.progress import Progress
from muse_stream.replay.rows import REPLAY_SCHEMA, ConfigRows, record_batch
from muse_stream.replay.window import (
    Window,
    WindowError,
    parse_shard,
    parse_time,
    shard_of,
)
from muse_stream.topics import (
    DEFAULT_RETENTION_MS,
    RETAINED_KINDS,
    TopicError,
    TopicNames,
    describe_retention,
    parse_retention,
)
from tests.support.poison import POISON, STRICT_INTENT
from tests.unit.test_batch_scoring import (
    NAMES,
    StaticSnapshot,
    _events,
    _records,
)


def _mixed(predictors: dict[str, Predictor]) -> tuple[StaticSnapshot, list]:
    _, good = _events(200)
    values = good[:100] + [value for _, value, _ in POISON] + good[100:]
    snapshot = StaticSnapshot(
        3, {"card-fraud": (predictors["v1"], (predictors["v2"],)), STRICT_INTENT: (predictors["strict"], ())}
    )
    return snapshot, _records("bank-a", values)


def test_the_listener_changes_no_output_byte_and_sees_all_three_stages(
    predictors: dict[str, Predictor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring.time, "time", lambda: 1_800_000_000.0)  # same scored_at/failed_at in both runs
    snapshot, records = _mixed(predictors)
    plain = BatchScorer(NAMES).score(records, snapshot)
    heard: list[tuple] = []
    listened = BatchScorer(NAMES, listener=lambda *args: heard.append(args)).score(records, snapshot)
    assert listened == plain  # every result, dead letter and shadow record, byte for byte
    live = [h for h in heard if h[0] == "live" and h[1] is predictors["v1"]]
    [(_, _, live_records, event_ids, intents, scores)] = live
    results = [
        ScoreResult.model_validate_json(r.value)
        for r in plain.results
        if orjson.loads(r.value)["predictor_id"] == predictors["v1"].id
    ]
    assert [r.event_id for r in results] == list(event_ids) and set(intents) == {"card-fraud"}
    assert [r.score for r in results] == scores.mapped.tolist()
    expected = predictors["v1"].score_records([orjson.loads(r.value)["features"] for r in live_records])
    assert np.array_equal(scores.raw, expected.raw) and np.array_equal(scores.corrected, expected.corrected)
    [(_, shadow, _, shadow_ids, _, shadow_scores)] = [h for h in heard if h[0] == "shadow"]
    shadows = [ShadowResult.model_validate_json(r.value) for r in plain.shadows]
    assert shadow is predictors["v2"] and [s.event_id for s in shadows] == list(shadow_ids)
    assert [s.raw_score for s in shadows] == shadow_scores.raw.tolist()


def test_a_scorer_without_score_records_hears_the_same_scores_and_dead_letters_the_same(
    predictors: dict[str, Predictor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay's columns-only scorer: no result or shadow record, everything else as the workers'."""
    monkeypatch.setattr(scoring.time, "time", lambda: 1_800_000_000.0)
    snapshot, records = _mixed(predictors)
    heard: list[tuple] = []
    full = BatchScorer(NAMES, listener=lambda *args: heard.append(args)).score(records, snapshot)
    quiet_heard: list[tuple] = []
    quiet = BatchScorer(NAMES, listener=lambda *args: quiet_heard.append(args), emit_scores=False).score(records, snapshot)
    assert full.results and full.shadows and not quiet.results and not quiet.shadows
    assert quiet.dead_letters == full.dead_letters  # every reason and byte
    assert len(quiet_heard) == len(heard)
    for (role, predictor, recs, ids, intents, scores), (q_role, q_predictor, q_recs, q_ids, q_intents, q_scores) in zip(
        heard, quiet_heard, strict=True
    ):
        assert (role, predictor, list(recs), list(ids), list(intents)) == (
            q_role,
            q_predictor,
            list(q_recs),
            list(q_ids),
            list(q_intents),
        )
        assert all(np.array_equal(getattr(scores, s), getattr(q_scores, s)) for s in ("raw", "corrected", "mapped"))
    with pytest.raises(ValueError, match="needs a listener"):
        BatchScorer(NAMES, emit_scores=False)


def test_rows_hold_one_live_row_per_event_and_config_with_labels_joined(predictors: dict[str, Predictor]) -> None:
    snapshot, records = _mixed(predictors)
    candidate = StaticSnapshot(0, {"card-fraud": (predictors["v2"], ())})
    collectors = [ConfigRows("live", 3), ConfigRows("cand", None)]
    by_position = {(r.topic, r.partition, r.offset): r for r in records}
    for rows, snap in zip(collectors, [snapshot, candidate], strict=True):
        rows.add_dead_letters(BatchScorer(NAMES, listener=rows).score(records, snap), by_position)
    when = datetime(2026, 3, 1, tzinfo=UTC)
    labels = {"bank-a": {"e0": LabelRecord(event_id="e0", label=1, labelled_at=when)}}
    table = record_batch(collectors, labels).to_pylist()
    assert record_batch(collectors, labels).schema == REPLAY_SCHEMA and not collectors[0].rows  # taken
    for tag in ("live", "cand"):
        live_rows = [r for r in table if r["config"] == tag and r["role"] == "live"]
        assert sorted(r["offset"] for r in live_rows) == list(range(len(records)))
        scored = [r for r in live_rows if r["dead_letter_reason"] is None]
        assert all(r["raw_score"] is not None and r["score"] is not None for r in scored)
    live = {r["offset"]: r for r in table if r["config"] == "live" and r["role"] == "live"}
    assert live[0]["event_id"] == "e0" and live[0]["label"] == 1 and live[0]["labelled_at"] == when
    assert live[1]["label"] is None and live[0]["day"] == "2023-11-14"
    assert live[0]["predictor_id"] == predictors["v1"].id and live[0]["config_version"] == 3
    assert sum(collectors[0].dead_letters.values()) == sum(r["dead_letter_reason"] is not None for r in live.values())
    assert len([r for r in table if r["role"] == "shadow"]) == 200  # the candidate has no shadow


def test_config_tags_are_unique() -> None:
    assert [
        c.tag
        for c in check_tags([ConfigChoice("live"), ConfigChoice("version", 3), ConfigChoice("file", path=Path("a/cand.toml"))])
    ] == ["live", "v3", "cand"]
    with pytest.raises(ReplayConfigError, match=r"\['cand'\] are asked for more than once"):
        check_tags([ConfigChoice("file", path=Path("a/cand.toml")), ConfigChoice("file", path=Path("b/cand.toml"))])
    with pytest.raises(ReplayConfigError, match="no config to replay with"):
        check_tags([])


def test_windows_resolve_to_half_open_offset_ranges() -> None:
    assert Window().offsets(5, 100) == (5, 100)
    assert Window(from_offset=10, to_offset=20).offsets(0, 100) == (10, 20)
    assert Window(from_offset=10, to_offset=500).offsets(50, 100) == (50, 100)
    assert Window(from_ms=1, to_ms=2).offsets(0, 100, 30, 60) == (30, 60)
    assert Window(from_ms=1).offsets(0, 100, -1, None) == (100, 100)  # nothing at or after --from
    assert Window(to_ms=2).offsets(0, 100, None, -1) == (0, 100)  # nothing at or after --to: up to the end
    assert parse_time("2026-03-01T00:00:00Z", "--from") == parse_time("2026-03-01", "--from") == 1_772_323_200_000
    with pytest.raises(WindowError, match="--from 'yesterday' is not an ISO 8601 time"):
        parse_time("yesterday", "--from")
    with pytest.raises(WindowError, match="not both"):
        Window(from_ms=1, from_offset=1)
    with pytest.raises(WindowError, match="--to must be later"):
        Window(from_ms=2, to_ms=1)


def test_progress_prints_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(1000, stream=stream, interval_s=0)
    progress.update(250)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("replay: 250/1,000 events  25%,") and "events/s, ETA" in lines[0]
    assert lines[-1].startswith("replay: 250/250 events 100%") and "\r" not in stream.getvalue()


def test_progress_draws_a_bar_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(1000, stream=stream, interval_s=0)
    progress.update(500)
    progress.close()
    assert stream.getvalue().startswith("\rreplay [###############...............] 500/1,000 events  50%,")
    last = stream.getvalue().rsplit("\r", 1)[1]
    assert last.startswith("replay [" + "#" * 30 + "] 500/500 events 100%") and last.endswith("\n")


def test_shards_split_whole_partitions_so_every_event_is_read_once() -> None:
    keys = [("t.b", 1), ("t.a", 0), ("t.b", 0), ("t.a", 1), ("t.a", 2)]
    shards = [shard_of(keys, (k, 2)) for k in (1, 2)]
    assert shards == [[("t.a", 0), ("t.a", 2), ("t.b", 1)], [("t.a", 1), ("t.b", 0)]]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "2", "a/b", "-1/2"):
        with pytest.raises(WindowError, match="is not K/N"):
            parse_shard(bad)


def test_a_window_before_the_oldest_retained_record_is_a_one_line_error() -> None:
    march = 1_772_323_200_000  # 2026-03-01T00:00Z
    Window(from_ms=march).check_retained("ns.tenant.a.input", 0, 0, None)  # nothing was ever removed
    Window(from_ms=march).check_retained("ns.tenant.a.input", 0, 50, march - 1)  # older than the window: kept
    Window().check_retained("ns.tenant.a.input", 0, 50, march)  # no start asked for: from the oldest
    Window(from_offset=50).check_retained("ns.tenant.a.input", 0, 50, None)
    with pytest.raises(WindowError) as caught:
        Window(from_ms=march).check_retained("ns.tenant.a.input", 1, 50, march + 86_400_000)
    assert str(caught.value) == (
        "the window starts at 2026-03-01T00:00:00+00:00, before the oldest record still on ns.tenant.a.input "
        "partition 1, which is from 2026-03-02T00:00:00+00:00 (offset 50): older records are gone (retention); "
        "replay from --from 2026-03-02T00:00:00+00:00 or later"
    )
    with pytest.raises(WindowError, match="which is nothing"):
        Window(from_ms=march).check_retained("ns.tenant.a.input", 0, 50, None)
    with pytest.raises(
        WindowError, match=r"--from-offset 10 is before the oldest offset still on ns.tenant.a.input partition 0 \(50\)"
    ):
        Window(from_offset=10).check_retained("ns.tenant.a.input", 0, 50, None)


def test_input_and_labels_topics_get_a_default_retention_that_is_not_checked_afterwards() -> None:
    specs = {
        spec.name.rpartition(".")[2]: spec
        for spec in TopicNames("ns").tenant_topic_specs("a", kinds=("input", "output", "dlq", "labels"))
    }
    assert specs["input"].defaults == specs["labels"].defaults == {"retention.ms": str(DEFAULT_RETENTION_MS)}
    assert "retention.ms" not in specs["input"].configs and not specs["output"].defaults
    assert [describe_retention(v) for v in (str(DEFAULT_RETENTION_MS), "-1", "3600000", "1500", None)] == [
        "7d",
        "forever",
        "1h",
        "1500ms",
        "?",
    ]


def test_a_retention_is_read_as_a_duration_and_a_tenant_config_keeps_one_spelling() -> None:
    assert [parse_retention(t) for t in ("14d", "36h", "90m", "45s", "1500ms", "forever", " 2D ")] == [
        14 * 86_400_000,
        36 * 3_600_000,
        90 * 60_000,
        45_000,
        1500,
        -1,
        2 * 86_400_000,
    ]
    assert parse_retention("1.5d") == parse_retention("36h")  # the CLI's durations, one parser (durations.py)
    for text in ("two weeks", "0d", "-3d", "14", "1.5ms"):
        with pytest.raises(TopicError, match="is not a duration"):
            parse_retention(text)
    assert all(describe_retention(str(parse_retention(t))) == t for t in ("14d", "36h", "forever", "1500ms"))
    assert TenantConfig(name="a", default_intent="i", retention="336h").retention == "14d"
    assert TenantConfig(name="a", default_intent="i").retention_ms is None
    with pytest.raises(ValueError, match="is not a duration"):
        TenantConfig(name="a", default_intent="i", retention="soon")
    specs = TopicNames("ns").tenant_topic_specs("a", kinds=RETAINED_KINDS, retention_ms=parse_retention("30d"))
    assert [spec.defaults for spec in specs] == [{"retention.ms": str(30 * 86_400_000)}] * 2
