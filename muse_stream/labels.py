"""Labels (event outcomes) as analysts hand them in: read from a Parquet file, checked, encoded for
the tenant's labels topic, and folded back into one label per event id. Pure: no Kafka in here.

A label file is a Parquet table with the columns of :class:`~muse_stream.events.LabelRecord`:
``event_id`` (string), ``label`` (0/1 integers or booleans) and ``labelled_at`` (a timestamp, or
ISO 8601 strings with a time zone; a timestamp column without one is read as UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from muse_stream.errors import MuseError
from muse_stream.events import LabelRecord

LABEL_COLUMNS = tuple(LabelRecord.model_fields)
MAX_PROBLEMS = 5


class LabelFileError(MuseError):
    """A label file that cannot be published as it is."""


def read_label_file(path: str | Path) -> list[LabelRecord]:
    """Every row of ``path`` as a checked :class:`LabelRecord`; raises LabelFileError naming the file,
    the missing columns or the first bad rows (row numbers from 0) and what to fix."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise LabelFileError(f"label file {path} does not exist") from None
    except (OSError, pa.ArrowException) as error:
        raise LabelFileError(f"label file {path} is not a readable Parquet file: {error}") from None
    missing = [column for column in LABEL_COLUMNS if column not in table.column_names]
    if missing:
        raise LabelFileError(
            f"label file {path} lacks column(s) {', '.join(missing)} (it has "
            f"{', '.join(table.column_names) or 'none'}); a label file needs {', '.join(LABEL_COLUMNS)}"
        )
    columns = {name: table.column(name).to_pylist() for name in LABEL_COLUMNS}
    if pa.types.is_boolean(table.schema.field("label").type):
        columns["label"] = [None if v is None else int(v) for v in columns["label"]]
    labelled_at = table.schema.field("labelled_at").type
    if pa.types.is_timestamp(labelled_at) and labelled_at.tz is None:
        columns["labelled_at"] = [None if v is None else v.replace(tzinfo=UTC) for v in columns["labelled_at"]]
    records: list[LabelRecord] = []
    problems: list[str] = []
    for row, values in enumerate(zip(*columns.values(), strict=True)):
        try:
            records.append(LabelRecord.model_validate(dict(zip(LABEL_COLUMNS, values, strict=True))))
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(row)"
            problems.append(f"row {row} {field}={first.get('input')!r}: {first['msg']}")
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS]) + (
            f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        )
        raise LabelFileError(
            f"label file {path} has {len(problems)} bad row(s): {shown}; labels are 0 (genuine) or 1 (fraud), "
            "every row needs an event_id and a labelled_at with a time zone"
        )
    return records


def encode_label(record: LabelRecord) -> tuple[bytes, bytes]:
    """(key, value) of a label's record: keyed by event id, so an event's labels share a partition."""
    return record.event_id.encode(), orjson.dumps(record.model_dump(mode="json"))


def latest_labels(values: Iterable[bytes | None]) -> tuple[dict[str, LabelRecord], int]:
    """Event id -> its latest label, from a labels topic's values in log order (a later record of an
    event id replaces the earlier one), and how many records were not valid labels (skipped)."""
    labels: dict[str, LabelRecord] = {}
    invalid = 0
    for value in values:
        try:
            record = LabelRecord.model_validate_json(value or b"")
        except ValidationError:
            invalid += 1
            continue
        labels[record.event_id] = record
    return labels, invalid
