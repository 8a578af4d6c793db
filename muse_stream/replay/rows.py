"""The replay dataset's rows: collected from a :class:`BatchScorer` through its score listener (all
three score stages) and its dead letters, joined with labels, as Arrow record batches. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds

from muse_stream.events import LabelRecord
from muse_stream.pipeline.scoring import BatchOutcome, SourceRecord
from muse_stream.predictors import Predictor, ScoreBatch

PARTITION_COLUMNS = ("tenant", "day")
REPLAY_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("tenant", pa.string()),
    ("intent", pa.string()),
    ("event_timestamp", pa.timestamp("ms", tz="UTC")),
    ("day", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("config", pa.string()),
    ("config_version", pa.int64()),
    ("role", pa.string()),
    ("predictor_id", pa.string()),
    ("predictor_name", pa.string()),
    ("predictor_version", pa.string()),
    ("raw_score", pa.float64()),
    ("corrected_score", pa.float64()),
    ("score", pa.float64()),
    ("dead_letter_reason", pa.string()),
    ("label", pa.int8()),
    ("labelled_at", pa.timestamp("ms", tz="UTC")),
])
_DAY_MS = 86_400_000
PARTITIONING = ds.partitioning(pa.schema([REPLAY_SCHEMA.field(c) for c in PARTITION_COLUMNS]), flavor="hive")


def read_dataset(path: str | Path) -> ds.Dataset:
    """A replay's dataset with its tenant and day columns typed as written (strings)."""
    return ds.dataset(path, format="parquet", partitioning=PARTITIONING)


def _event_fields(value: bytes | None) -> tuple[str | None, str | None]:
    """(event_id, intent) of a dead-lettered record where its JSON still says them, else None."""
    try:
        payload = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    event_id, intent = payload.get("event_id"), payload.get("intent")
    return (event_id if isinstance(event_id, str) else None), (intent if isinstance(intent, str) else None)


class ConfigRows:
    """One config's rows for one batch. Pass it as the ``listener`` of that config's BatchScorer,
    then call :meth:`add_dead_letters` with the scorer's outcome."""

    def __init__(self, tag: str, version: int | None) -> None:
        self.tag = tag
        self.version = version
        self.rows: list[tuple] = []  # (record, event_id, intent, role, predictor, raw, corrected, mapped, reason)
        self.dead_letters: Counter[str] = Counter()

    def __call__(self, role: str, predictor: Predictor, records: Sequence[SourceRecord], event_ids: Sequence[str],
                 intents: Sequence[str], scores: ScoreBatch) -> None:
        append = self.rows.append
        for record, event_id, intent, raw, corrected, mapped in zip(
                records, event_ids, intents, scores.raw.tolist(), scores.corrected.tolist(), scores.mapped.tolist(),
                strict=True):
            append((record, event_id, intent, role, predictor, raw, corrected, mapped, None))

    def add_dead_letters(self, outcome: BatchOutcome, records: Mapping[tuple[str, int, int], SourceRecord]) -> None:
        """A live row with its reason for each dead letter; ``records`` finds a letter's input record
        by (topic, partition, offset)."""
        for letter in outcome.dead_letters:
            body = orjson.loads(letter.value)
            source = body["source"]
            record = records[(source["topic"], source["partition"], source["offset"])]
            event_id, intent = _event_fields(record.value)
            self.dead_letters[body["reason_code"]] += 1
            self.rows.append((record, event_id, intent, "live", None, None, None, None, body["reason_code"]))

    def take(self) -> list[tuple]:
        rows, self.rows = self.rows, []
        return rows


def record_batch(configs: Sequence[ConfigRows], labels: Mapping[str, Mapping[str, LabelRecord]]) -> pa.RecordBatch:
    """Every row the configs collected (emptying them), labels joined by (tenant, event id)."""
    columns: dict[str, list] = {field.name: [] for field in REPLAY_SCHEMA}
    days: dict[int, str] = {}
    (event_ids, tenants, intents, stamps, day_col, partitions, offsets, tags, versions, roles, ids, names, pversions,
     raws, correcteds, scores, reasons, label_col, labelled) = columns.values()
    for config in configs:
        for record, event_id, intent, role, predictor, raw, corrected, mapped, reason in config.take():
            timestamp = record.timestamp_ms
            day = days.get(timestamp // _DAY_MS)
            if day is None:
                day = days[timestamp // _DAY_MS] = datetime.fromtimestamp(timestamp // _DAY_MS * 86_400, UTC).date().isoformat()
            label = labels.get(record.tenant, {}).get(event_id) if event_id is not None else None
            event_ids.append(event_id)
            tenants.append(record.tenant)
            intents.append(intent)
            stamps.append(timestamp)
            day_col.append(day)
            partitions.append(record.partition)
            offsets.append(record.offset)
            tags.append(config.tag)
            versions.append(config.version)
            roles.append(role)
            ids.append(predictor.id if predictor else None)
            names.append(predictor.name if predictor else None)
            pversions.append(predictor.version if predictor else None)
            raws.append(raw)
            correcteds.append(corrected)
            scores.append(mapped)
            reasons.append(reason)
            label_col.append(None if label is None else label.label)
            labelled.append(None if label is None else label.labelled_at)
    return pa.RecordBatch.from_pydict(columns, schema=REPLAY_SCHEMA)
