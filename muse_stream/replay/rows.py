"""The replay dataset's rows: collected from a :class:`BatchScorer` through its score listener (all
three score stages) and its dead letters, joined with labels, as Arrow record batches. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds

from muse_stream.events import LabelRecord
from muse_stream.pipeline.scoring import BatchOutcome, SourceRecord
from muse_stream.predictors import Predictor, ScoreBatch

PARTITION_COLUMNS = ("tenant", "day")
REPLAY_SCHEMA = pa.schema(
    [
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
    ]
)
_DAY_MS = 86_400_000
_TENANT, _PARTITION, _OFFSET, _TIMESTAMP = (attrgetter(name) for name in ("tenant", "partition", "offset", "timestamp_ms"))
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


class _Chunk(NamedTuple):
    """Rows of one listener call (one predictor, one role) or one batch's dead letters; scores are
    None for dead letters, ``reasons`` None for scored rows."""

    records: Sequence[SourceRecord]
    event_ids: Sequence[str | None]
    intents: Sequence[str | None]
    role: str
    predictor: Predictor | None
    scores: ScoreBatch | None
    reasons: list[str] | None


class ConfigRows:
    """One config's rows for one batch, kept as column chunks (one per listener call) so a batch's
    Arrow columns are built with a few list and numpy operations per chunk, not per row. Pass it as
    the ``listener`` of that config's BatchScorer, then call :meth:`add_dead_letters` with the
    scorer's outcome."""

    def __init__(self, tag: str, version: int | None) -> None:
        self.tag = tag
        self.version = version
        self.rows: list[_Chunk] = []
        self.dead_letters: Counter[str] = Counter()

    def __call__(
        self,
        role: str,
        predictor: Predictor,
        records: Sequence[SourceRecord],
        event_ids: Sequence[str],
        intents: Sequence[str],
        scores: ScoreBatch,
    ) -> None:
        if not len(records) == len(event_ids) == len(intents) == len(scores.raw) == len(scores.corrected) == len(scores.mapped):
            raise ValueError(f"a {role} score batch of {predictor.id} has columns of different lengths")
        self.rows.append(_Chunk(records, event_ids, intents, role, predictor, scores, None))

    def add_dead_letters(self, outcome: BatchOutcome, records: Mapping[tuple[str, int, int], SourceRecord]) -> None:
        """A live row with its reason for each dead letter; ``records`` finds a letter's input record
        by (topic, partition, offset)."""
        letters, ids, intents, reasons = [], [], [], []
        for letter in outcome.dead_letters:
            body = orjson.loads(letter.value)
            source = body["source"]
            record = records[(source["topic"], source["partition"], source["offset"])]
            event_id, intent = _event_fields(record.value)
            self.dead_letters[body["reason_code"]] += 1
            letters.append(record)
            ids.append(event_id)
            intents.append(intent)
            reasons.append(body["reason_code"])
        if letters:
            self.rows.append(_Chunk(letters, ids, intents, "live", None, None, reasons))

    def take(self) -> list[_Chunk]:
        rows, self.rows = self.rows, []
        return rows


_NO_LABELS: Mapping[str, LabelRecord] = {}


def record_batch(configs: Sequence[ConfigRows], labels: Mapping[str, Mapping[str, LabelRecord]]) -> pa.RecordBatch:
    """Every row the configs collected (emptying them), labels joined by (tenant, event id)."""
    text: dict[str, list] = {
        name: []
        for name in (
            "event_id",
            "tenant",
            "intent",
            "config",
            "role",
            "predictor_id",
            "predictor_name",
            "predictor_version",
            "dead_letter_reason",
        )
    }
    versions: list[int | None] = []
    stamps: list[np.ndarray] = []
    partitions: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    raws: list[np.ndarray] = []
    correcteds: list[np.ndarray] = []
    mapped: list[np.ndarray] = []
    for config in configs:
        for chunk in config.take():
            n = len(chunk.records)
            text["event_id"].extend(chunk.event_ids)
            text["tenant"].extend(map(_TENANT, chunk.records))
            text["intent"].extend(chunk.intents)
            text["config"].extend([config.tag] * n)
            text["role"].extend([chunk.role] * n)
            predictor = chunk.predictor
            text["predictor_id"].extend([predictor.id if predictor else None] * n)
            text["predictor_name"].extend([predictor.name if predictor else None] * n)
            text["predictor_version"].extend([predictor.version if predictor else None] * n)
            text["dead_letter_reason"].extend(chunk.reasons or [None] * n)
            versions.extend([config.version] * n)
            stamps.append(np.fromiter(map(_TIMESTAMP, chunk.records), np.int64, n))
            partitions.append(np.fromiter(map(_PARTITION, chunk.records), np.int32, n))
            offsets.append(np.fromiter(map(_OFFSET, chunk.records), np.int64, n))
            for column, values in (
                (raws, chunk.scores and chunk.scores.raw),
                (correcteds, chunk.scores and chunk.scores.corrected),
                (mapped, chunk.scores and chunk.scores.mapped),
            ):
                column.append(np.full(n, np.nan) if values is None else np.asarray(values, np.float64))
    stamp = np.concatenate(stamps) if stamps else np.empty(0, np.int64)
    dead = np.asarray([reason is not None for reason in text["dead_letter_reason"]], bool)
    day_numbers, day_index = np.unique(stamp // _DAY_MS, return_inverse=True)
    day_names = np.array([datetime.fromtimestamp(int(d) * 86_400, UTC).date().isoformat() for d in day_numbers], object)
    found = [
        None if event_id is None else labels.get(tenant, _NO_LABELS).get(event_id)
        for tenant, event_id in zip(text["tenant"], text["event_id"], strict=True)
    ]

    def scores(chunks: list[np.ndarray]) -> pa.Array:
        return pa.array(np.concatenate(chunks) if chunks else np.empty(0), pa.float64(), mask=dead)

    columns = {
        **{name: pa.array(values, pa.string()) for name, values in text.items()},
        "event_timestamp": pa.array(stamp, pa.int64()).cast(REPLAY_SCHEMA.field("event_timestamp").type),
        "day": pa.array(day_names[day_index.reshape(-1)] if stamp.size else [], pa.string()),
        "partition": pa.array(np.concatenate(partitions) if partitions else [], pa.int32()),
        "offset": pa.array(np.concatenate(offsets) if offsets else [], pa.int64()),
        "config_version": pa.array(versions, pa.int64()),
        "raw_score": scores(raws),
        "corrected_score": scores(correcteds),
        "score": scores(mapped),
        "label": pa.array([None if label is None else label.label for label in found], pa.int8()),
        "labelled_at": pa.array(
            [None if label is None else label.labelled_at for label in found], REPLAY_SCHEMA.field("labelled_at").type
        ),
    }
    return pa.RecordBatch.from_arrays([columns[field.name] for field in REPLAY_SCHEMA], schema=REPLAY_SCHEMA)
