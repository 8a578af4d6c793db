"""Rebuilding any version from the history's change sets, and summarising what each one did."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from config_support import deployment

from muse_stream.config.deployment import DeploymentConfig
from muse_stream.config.history import (
    HISTORY_FORMAT,
    HistoryEntry,
    HistoryError,
    bodies_at,
    config_at,
    decode_history_record,
    encode_history_record,
    history_lines,
    summarise,
)

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def change_set(before: DeploymentConfig | None, after: DeploymentConfig) -> dict[str, dict | None]:
    """What the publisher writes to the history for ``before`` -> ``after``: changed bodies, None for removed keys."""
    old = before.bodies() if before else {}
    new = after.bodies()
    changes: dict[str, dict | None] = {k: orjson.loads(v) for k, v in new.items() if old.get(k) != v}
    changes.update({k: None for k in old.keys() - new.keys()})
    return changes


def history(*configs: DeploymentConfig, by: str | None = "ana@ops-1") -> list[HistoryEntry]:
    entries, before = [], None
    for version, config in enumerate(configs, start=1):
        entries.append(HistoryEntry(version, WHEN, by, change_set(before, config)))
        before = config
    return entries


V1 = deployment()
V2 = deployment({("bank-a", "card-fraud"): ("fraud-v2", ("fraud-v1",)), ("bank-b", "card-fraud"): ("fraud-v1", ())})
V3 = deployment({("bank-a", "card-fraud"): ("fraud-v1", ()), ("bank-c", "card-fraud"): ("fraud-v2", ())})


def test_every_version_is_rebuilt_from_the_change_sets_up_to_it() -> None:
    entries = history(V1, V2, V3, DeploymentConfig())
    for version, config in enumerate((V1, V2, V3, DeploymentConfig()), start=1):
        assert config_at(entries, version).bodies() == config.bodies()
    # the order records arrive in does not matter, and a later record for a version replaces an earlier one
    assert config_at(list(reversed(entries)), 2).bodies() == V2.bodies()


def test_a_version_outside_the_history_or_behind_a_gap_is_refused() -> None:
    entries = history(V1, V2, V3)
    with pytest.raises(HistoryError, match="there is no version 4: the history holds versions 1 to 3"):
        bodies_at(entries, 4)
    with pytest.raises(HistoryError, match="there is no version 1: the history is empty"):
        bodies_at([], 1)
    with pytest.raises(HistoryError, match=r"lacks version\(s\) \[2\], so version 3 cannot be rebuilt"):
        bodies_at([entries[0], entries[2]], 3)


def test_summary_counts_added_changed_and_removed_keys_by_kind() -> None:
    before = {k: orjson.loads(v) for k, v in V1.bodies().items()}
    # V1 -> V2: bank-a's two routes become one changed + one removed; bank-b loses a route; bank-c goes
    assert summarise(change_set(V1, V2), before) == "~1 route, -1 tenant, -4 routes"
    assert summarise(change_set(None, V1), {}) == "+3 tenants, +2 intents, +2 predictors, +6 routes, +2 models"
    assert summarise({}, before) == "no changes (the version marker was restored)"
    # a body rewritten unchanged, or a removal of what was not there, is no change
    assert (
        summarise({"tenant/bank-a": before["tenant/bank-a"], "route/x/y": None}, before)
        == "no changes (the version marker was restored)"
    )


def test_history_lines_summarise_each_version_against_the_one_before() -> None:
    lines = history_lines(history(V1, V2, V3, DeploymentConfig()))
    assert [line.version for line in lines] == [1, 2, 3, 4]
    assert lines[2].summary == "+1 tenant, +1 route, ~1 route, -1 tenant, -1 route"
    assert lines[3].summary == "-2 tenants, -2 intents, -2 predictors, -2 routes, -2 models"
    assert "ana@ops-1" in lines[0].render() and "2026-12-01 12:00:00 UTC" in lines[0].render()


def test_records_round_trip_and_old_records_without_who_show_a_dash() -> None:
    changes = change_set(None, V1)
    entry = decode_history_record(b"1", encode_history_record(1, WHEN, "ana@ops-1", changes))
    assert entry == HistoryEntry(1, WHEN, "ana@ops-1", changes)
    old = orjson.dumps({"format": HISTORY_FORMAT, "config_version": 1, "applied_at": WHEN.isoformat(), "changes": changes})
    legacy = decode_history_record(b"1", old)
    assert legacy.applied_by is None
    assert history_lines([legacy])[0].render().split()[4] == "-"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b"meta", b"{}", "key 'meta' is not a version number"),
        (b"3", b"not json", "version 3: value is not JSON"),
        (b"3", b'{"format": "other"}', "is not a muse.config-history/1 record"),
        (b"3", orjson.dumps({"format": HISTORY_FORMAT, "config_version": 4, "changes": {}}), "must equal the key"),
        (b"3", orjson.dumps({"format": HISTORY_FORMAT, "config_version": 3, "changes": {"tenant/a": 1}}), "bodies or null"),
    ],
)
def test_unreadable_records_say_what_is_wrong(key: bytes, value: bytes, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        decode_history_record(key, value)
