"""Replay: score what the input topics hold again, with the live config, an earlier version or a
candidate file, through the very :class:`~muse_stream.pipeline.scoring.BatchScorer` the workers run,
and write the scores beside the labels as a Parquet dataset for analysts.

The dataset is in **long format**: one row per input event, config and predictor role, with a
``config`` column naming the config (``live``, ``v3``, or a candidate file's stem). Why long rather
than one ``<config>__score`` column per config: the schema stays the same whatever configs a replay
compares, rows of several replays concatenate, and a backtest is a ``group_by("config")`` rather than
column-name parsing. Each event has exactly one ``role="live"`` row per config (its scores, or the
``dead_letter_reason`` that config gave it) and one ``role="shadow"`` row per shadow predictor that
scored it. Columns (``schema.REPLAY_SCHEMA``): event_id, intent, event_timestamp, partition, offset,
config, config_version, role, predictor_id/name/version, raw_score, corrected_score, score (the
mapped score a tenant gets), dead_letter_reason, label and labelled_at (null where no label is
known); the hive partitions ``tenant=<t>/day=<YYYY-MM-DD>`` (UTC day of the event) add tenant and day.

Layout: pure parts (``configs``, ``window``, ``rows``, ``progress``) import no Kafka client; the
Kafka parts (``sources``: config log, history, labels and input partitions read with ``assign()``,
never as the workers' group) and the run that joins them (``run``) do.
"""

# Input records scored per batch: large enough that the scorer's per-batch costs (routing, templates,
# one predict call) are small, small enough to keep a replay's memory low (a 1,000,000-event replay
# in batches of 20,000 peaked at 761 MiB RSS, and 20,000 saved no CPU time measurably over 5,000).
DEFAULT_BATCH_SIZE = 5000
