"""The Faust baseline: the scoring worker a Python user would write first, as a plain Faust agent.

Same scoring as ``muse worker`` (the same :class:`BatchScorer` on the same config snapshot, so the
same results, DLQ records and batches), but Faust's loop: aiokafka consumer, ``take_events`` micro-
batches, one ``await send`` per result, offsets committed by Faust in the background (at-least-once,
no transactions). Run as a process by ``muse bench throughput``::

    python -m muse_stream.bench.faust_baseline --namespace NS --tenants bank-a,bank-b
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence

from muse_stream.pipeline.scoring import BatchScorer, SourceRecord
from muse_stream.pipeline.worker import WorkerSettings
from muse_stream.topics import TopicNames


def app_id(names: TopicNames) -> str:
    """Faust's app id; its internal topics start with it (the bench deletes them by this prefix)."""
    return f"{names.namespace}-faust"


def main(argv: Sequence[str]) -> int:
    import faust

    from muse_stream.broker import command_bootstrap
    from muse_stream.config.artifact_topic import KafkaArtifactStore
    from muse_stream.config.watcher import ConfigWatcher

    parser = argparse.ArgumentParser(prog="python -m muse_stream.bench.faust_baseline")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--worker-id", help="unused: Faust names its members itself")
    parser.add_argument("--tenants", required=True, help="comma-separated tenant names")
    parser.add_argument("--max-batch", type=int, default=WorkerSettings.max_batch)
    parser.add_argument("--within-ms", type=int, default=WorkerSettings.commit_interval_ms)
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING")
    bootstrap = command_bootstrap()
    names = TopicNames(args.namespace)
    watcher = ConfigWatcher(bootstrap, names, artifact_store=KafkaArtifactStore(bootstrap, names)).start()
    watcher.wait_for_version(1, timeout=60)
    scorer = BatchScorer(names)

    app = faust.App(
        app_id(names),
        datadir=tempfile.mkdtemp(prefix="muse-faust-"),
        broker=f"kafka://{bootstrap}",
        web_enabled=False,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        # Faust's own topic declarations cannot talk to Kafka 4 (see muse_stream.monitor.app): the
        # input and output topics exist already, and no leader topic is needed.
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    inputs = app.topic(*(names.input_topic(t) for t in args.tenants.split(",")), key_serializer="raw", value_serializer="raw")

    @app.agent(inputs)
    async def score(stream):
        async for events in stream.take_events(args.max_batch, within=args.within_ms / 1000):
            records = []
            for event in events:
                message = event.message
                records.append(
                    SourceRecord(
                        names.tenant_of_topic(message.topic),
                        message.topic,
                        message.partition,
                        message.offset,
                        message.timestamp,
                        message.key,
                        message.value,
                    )
                )
            outcome = scorer.score(records, watcher.current)
            for record in outcome.results + outcome.dead_letters + outcome.shadows:
                await app.send(record.topic, key=record.key, value=record.value)

    try:
        faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    finally:
        watcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
