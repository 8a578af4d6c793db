"""The pass-through worker: the production :class:`Worker` loop (same consumer, same transactional
producer, same offsets-in-transaction commit) with a scorer that copies bytes, which is the ceiling
any scoring worker on this machine can reach::

    python -m muse_stream.bench.passthrough passthrough --namespace NS --worker-id ID
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.pipeline.scoring import (
    BatchOutcome,
    OutgoingRecord,
    SnapshotLike,
    SourceRecord,
)
from muse_stream.topics import TopicNames

# What WorkerProcess runs for the pass-through worker: ``python -m muse_stream.bench.passthrough passthrough``.
PASSTHROUGH_ENTRY = ("muse_stream.bench.passthrough", "passthrough")


class PassthroughScorer:
    """Copies every input record's bytes to its tenant's output topic: no parsing, no scoring. With
    ``stamp_key``, a result's key is its input's timestamp (decimal ms) instead of the input's key,
    so ``muse bench latency`` can time results that carry no timings."""

    def __init__(self, names: TopicNames, *, stamp_key: bool = False) -> None:
        self.names = names
        self.stamp_key = stamp_key
        self._outputs: dict[str, str] = {}

    def score(self, records: Sequence[SourceRecord], snapshot: SnapshotLike) -> BatchOutcome:
        outputs = self._outputs
        results = []
        for record in records:
            topic = outputs.get(record.tenant)
            if topic is None:
                topic = outputs[record.tenant] = self.names.output_topic(record.tenant)
            key = b"%d" % record.timestamp_ms if self.stamp_key else record.key
            results.append(OutgoingRecord(topic, key, record.value or b""))
        return BatchOutcome(results=results)

    def counters(self) -> dict[str, int]:
        """None: it has no shadows and nothing to skip."""
        return {}


def _passthrough_main(argv: Sequence[str]) -> int:
    from muse_stream.broker import command_bootstrap
    from muse_stream.pipeline.worker import Worker, WorkerSettings

    parser = argparse.ArgumentParser(prog="python -m muse_stream.bench.passthrough passthrough")
    parser.add_argument("mode", choices=["passthrough"])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--commit-interval-ms", type=int, default=WorkerSettings.commit_interval_ms)
    parser.add_argument("--max-batch", type=int, default=WorkerSettings.max_batch)
    parser.add_argument("--contended-batch", type=int, default=WorkerSettings.contended_batch)
    parser.add_argument("--no-fair-share", dest="fair_share", action="store_false")
    parser.add_argument("--stamp-key", action="store_true", help="key each result by its input's timestamp (ms)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = TopicNames(args.namespace)
    settings = WorkerSettings(
        bootstrap=command_bootstrap(),
        names=names,
        worker_id=args.worker_id,
        commit_interval_ms=args.commit_interval_ms,
        max_batch=args.max_batch,
        contended_batch=args.contended_batch,
        fair_share=args.fair_share,
    )
    no_config = ConfigSnapshot.empty()  # the pass-through routes nothing
    worker = Worker(settings, lambda: no_config, PassthroughScorer(names, stamp_key=args.stamp_key))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    logging.info("pass-through worker stopped: %s", worker.run().line())
    return 0


if __name__ == "__main__":
    sys.exit(_passthrough_main(sys.argv[1:]))
