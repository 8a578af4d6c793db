"""Label files and the labels topic kind: checked before anything is published, folded latest-wins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from muse_stream.events import LabelRecord
from muse_stream.labels import (
    LabelFileError,
    encode_label,
    latest_labels,
    read_label_file,
)
from muse_stream.topics import TENANT_TOPIC_KINDS, TopicNames

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write(path: Path, **columns: pa.Array | list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_a_label_file_is_read_into_checked_records(tmp_path: Path) -> None:
    path = write(
        tmp_path / "l.parquet",
        event_id=["e1", "e2"],
        label=[1, 0],
        labelled_at=pa.array([WHEN, WHEN], pa.timestamp("ms", tz="UTC")),
    )
    assert read_label_file(path) == [
        LabelRecord(event_id="e1", label=1, labelled_at=WHEN),
        LabelRecord(event_id="e2", label=0, labelled_at=WHEN),
    ]


def test_boolean_labels_and_naive_timestamps_are_taken(tmp_path: Path) -> None:
    path = write(
        tmp_path / "l.parquet",
        event_id=["e1"],
        label=[True],
        labelled_at=pa.array([WHEN.replace(tzinfo=None)], pa.timestamp("us")),
    )
    [record] = read_label_file(path)
    assert record.label == 1 and record.labelled_at == WHEN


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "l.parquet", event_id=["e1"], outcome=[1])
    with pytest.raises(LabelFileError, match=r"l\.parquet lacks column\(s\) label, labelled_at \(it has event_id, outcome\)"):
        read_label_file(path)


def test_bad_label_values_name_their_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "l.parquet",
        event_id=["e1", "e2", "e3"],
        label=[1, 2, None],
        labelled_at=pa.array([WHEN] * 3, pa.timestamp("ms", tz="UTC")),
    )
    with pytest.raises(LabelFileError, match=r"2 bad row\(s\): row 1 label=2: .*; row 2 label=None"):
        read_label_file(path)


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    path.write_text("event_id,label\n")
    with pytest.raises(LabelFileError, match="not a readable Parquet file"):
        read_label_file(path)
    with pytest.raises(LabelFileError, match="does not exist"):
        read_label_file(tmp_path / "none.parquet")


def test_the_latest_label_of_an_event_wins() -> None:
    first = LabelRecord(event_id="e1", label=0, labelled_at=WHEN)
    later = LabelRecord(event_id="e1", label=1, labelled_at=WHEN)
    other = LabelRecord(event_id="e2", label=0, labelled_at=WHEN)
    labels, invalid = latest_labels([encode_label(first)[1], b"not json", encode_label(other)[1], encode_label(later)[1]])
    assert labels == {"e1": later, "e2": other} and invalid == 1
    assert encode_label(first)[0] == b"e1"


def test_labels_topics_are_tenant_topics_but_not_the_workers() -> None:
    names = TopicNames("ns")
    assert names.labels_topic("bank-a") == "ns.tenant.bank-a.labels"
    assert names.tenant_of_topic("ns.tenant.bank-a.labels") == "bank-a"
    # A worker ensures the data path only: deployments whose tenants have no labels topic keep working.
    assert [s.name.rpartition(".")[2] for s in names.tenant_topic_specs("bank-a", 3)] == ["input", "output", "dlq"]
    every = {s.name.rpartition(".")[2]: s for s in names.tenant_topic_specs("bank-a", 3, kinds=TENANT_TOPIC_KINDS)}
    assert set(every) == set(TENANT_TOPIC_KINDS)
    assert every["labels"].partitions == every["input"].partitions == 3
    assert "retention.ms" not in every["labels"].configs  # retained like the input
    with pytest.raises(ValueError, match="unknown tenant topic kinds"):
        names.tenant_topic_specs("bank-a", kinds=("secrets",))
