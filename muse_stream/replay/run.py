"""One replay: resolve configs, tenants and window, read the labels, score every input batch with
each config through its own :class:`BatchScorer`, and write the Parquet dataset (hive-partitioned
by tenant and day) while reading. See the package docstring for the dataset's columns."""

from __future__ import annotations

import functools
import math
import operator
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import Record
from muse_stream.config.artifact_topic import KafkaArtifactStore
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.errors import MuseError
from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard, SourceRecord
from muse_stream.replay import DEFAULT_BATCH_SIZE
from muse_stream.replay.configs import ConfigChoice, check_tags
from muse_stream.replay.progress import Progress
from muse_stream.replay.rows import (
    PARTITIONING,
    REPLAY_SCHEMA,
    ConfigRows,
    read_dataset,  # noqa: F401  (re-exported: `muse_stream.replay.run.read_dataset` is the documented reader)
    record_batch,
)
from muse_stream.replay.sources import (
    ReplayArtifactStore,
    read_labels,
    read_ranges,
    resolve_config,
    resolve_tenants,
    window_ranges,
)
from muse_stream.replay.window import Window, WindowError, shard_of
from muse_stream.topics import TopicNames

# pyarrow refuses a batch spanning more than 1,024 tenant/day directories by default: 500 tenants
# over three days is a normal replay.
MAX_PARTITIONS = 1 << 20
# Rows per Parquet row group, at least (a tenant-day's last one may be smaller): large groups
# compress and read well; the writer holds up to this many rows per open tenant/day file.
ROW_GROUP_ROWS = 65_536
_new_source = functools.partial(tuple.__new__, SourceRecord)  # SourceRecord from a tuple, no Python frame
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
_TOPIC, _PARTITION, _OFFSET, _TIMESTAMP, _KEY, _VALUE = map(
    operator.methodcaller, ("topic", "partition", "offset", "timestamp", "key", "value")
)


def source_records(names: TopicNames, messages: Sequence[Record]) -> list[SourceRecord]:
    """The scorer's records of a consumed batch, column by column with C-level maps (building them
    one message at a time took a tenth of a replay)."""
    topics: list[str] = list(map(_TOPIC, messages))
    tenant_of = {topic: names.tenant_of_topic(topic) for topic in set(topics)}
    return list(
        map(
            _new_source,
            zip(
                map(tenant_of.__getitem__, topics),
                topics,
                map(_PARTITION, messages),
                map(_OFFSET, messages),
                map(_SECOND, map(_TIMESTAMP, messages)),
                map(_KEY, messages),
                map(_VALUE, messages),
            ),
        )
    )


@dataclass
class ReplaySummary:
    out: Path
    window: str
    configs: list[tuple[str, int | None]]  # (tag, version)
    events: Counter[str] = field(default_factory=Counter)  # tenant -> input records read
    labelled: Counter[str] = field(default_factory=Counter)  # tenant -> events with a label
    dead_letters: dict[str, Counter[str]] = field(default_factory=dict)  # config tag -> reason -> count
    invalid_labels: int = 0
    seconds: float = 0.0  # reading, scoring and writing the window (configs, models and labels already loaded)

    def lines(self) -> list[str]:
        out = [
            f"replayed {sum(self.events.values()):,} events ({self.window}) with "
            + ", ".join(tag if version is None else f"{tag} (version {version})" for tag, version in self.configs)
        ]
        for tenant in sorted(self.events):
            out.append(f"  {tenant}: {self.events[tenant]:,} events, {self.labelled[tenant]:,} labelled")
        if self.seconds > 0:
            out.append(
                f"  read, scored and written in {self.seconds:.1f} s: {sum(self.events.values()) / self.seconds:,.0f} events/s"
            )
        for tag, reasons in self.dead_letters.items():
            text = ", ".join(f"{reason} {count:,}" for reason, count in sorted(reasons.items())) or "none"
            out.append(f"  dead letters with {tag}: {text}")
        if self.invalid_labels:
            out.append(f"  {self.invalid_labels:,} records on the labels topics were not valid labels and were skipped")
        out.append(f"dataset: {self.out} (hive-partitioned tenant=/day=; read with pyarrow.dataset, partitioning='hive')")
        return out


def replay(
    bootstrap: str,
    names: TopicNames,
    tenants: Sequence[str] | None,
    choices: Sequence[ConfigChoice],
    window: Window,
    out: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: TextIO | None = None,
    shard: tuple[int, int] | None = None,
) -> ReplaySummary:
    """Replay ``tenants`` (None: all) over ``window`` with each config; write the dataset to ``out``.
    With ``shard=(K, N)``, only the input partitions of shard K (:func:`shard_of`); the N shards'
    files may share ``out``, each named after its shard."""
    choices = check_tags(choices)
    out = Path(out)
    prefix = "part-" if shard is None else f"part-{shard[0]}-of-{shard[1]}-"
    ours = out.iterdir() if shard is None else out.rglob(prefix + "*")  # a shard minds only its own files
    if out.exists() and (not out.is_dir() or any(ours)):
        raise MuseError(
            f"output {out} exists and is not an empty directory{'' if shard is None else f' (or holds shard {shard[0]}/{shard[1]})'}; "
            "choose another --out or remove it"
        )
    admin = TopicAdmin(bootstrap)
    tenants = resolve_tenants(admin, names, tenants)
    resolved = [resolve_config(bootstrap, names, choice) for choice in choices]
    topic_store = KafkaArtifactStore(bootstrap, names)
    snapshots = [
        ConfigSnapshot.build(config.version or 0, config.config, ReplayArtifactStore(config.artifact_files, topic_store))
        for config in resolved
    ]
    existing = admin.existing_topics()
    inputs = {names.input_topic(t): existing[names.input_topic(t)] for t in tenants}
    ranges = window_ranges(bootstrap, inputs, window)
    total = sum(stop - start for start, stop in ranges.values())
    if total == 0:
        raise WindowError(
            f"the window ({window.describe()}) holds no events on {', '.join(inputs)}; "
            "widen --from/--to or the offsets, or check --tenant"
        )
    if shard is not None:
        ranges = {key: ranges[key] for key in shard_of(list(ranges), shard)}
        total = sum(stop - start for start, stop in ranges.values())
    labels, invalid = read_labels(bootstrap, names, tenants)
    where = window.describe() + ("" if shard is None else f", shard {shard[0]}/{shard[1]}: {len(ranges)} partition(s)")
    summary = ReplaySummary(out, where, [(c.tag, c.version) for c in resolved], invalid_labels=invalid)
    collectors = [ConfigRows(config.tag, config.version) for config in resolved]
    # No shadow is skipped for time in a replay (a worker skips slow ones to protect live latency);
    # one that raises is retried on the next batch.
    scorers = [
        BatchScorer(names, shadow_guard=ShadowGuard(budget_ms=math.inf, cooldown_s=0.0), listener=rows, emit_scores=False)
        for rows in collectors
    ]
    bar = Progress(total, stream=progress)

    def batches() -> Iterator[pa.RecordBatch]:
        for messages in read_ranges(bootstrap, ranges, batch_size=batch_size):
            records = source_records(names, messages)
            outcomes = [scorer.score(records, snapshot) for scorer, snapshot in zip(scorers, snapshots, strict=True)]
            if any(outcome.dead_letters for outcome in outcomes):  # the lookup only where a letter needs it
                by_position = {(r.topic, r.partition, r.offset): r for r in records}
                for rows, outcome in zip(collectors, outcomes, strict=True):
                    rows.add_dead_letters(outcome, by_position)
            summary.events.update(map(_FIRST, records))  # tenants
            batch = record_batch(collectors, labels)
            # Labelled events, counted once each: on the first config's live rows.
            counted = pc.and_(
                pc.and_(pc.equal(batch["config"], collectors[0].tag), pc.equal(batch["role"], "live")),
                pc.is_valid(batch["label"]),
            )
            summary.labelled.update(pc.filter(batch["tenant"], counted).to_pylist())
            if batch.num_rows:
                yield batch
            bar.update(len(records))

    started = time.perf_counter()
    ds.write_dataset(
        batches(),
        out,
        schema=REPLAY_SCHEMA,
        min_rows_per_group=ROW_GROUP_ROWS,
        max_rows_per_group=4 * ROW_GROUP_ROWS,
        format="parquet",
        partitioning=PARTITIONING,
        existing_data_behavior="overwrite_or_ignore",
        basename_template=prefix + "{i}.parquet",
        max_partitions=MAX_PARTITIONS,
    )
    summary.seconds = time.perf_counter() - started
    bar.close()
    for rows in collectors:
        summary.dead_letters[rows.tag] = rows.dead_letters
    return summary
