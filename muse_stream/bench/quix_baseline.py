"""The Quix Streams baseline: the exactly-once app a Quix user would write instead of ``muse worker``.

Quix Streams (PyPI ``quixstreams``, confluent-kafka based) with ``processing_guarantee="exactly-once"``:
one transactional producer, the input offsets committed in its transactions every ``commit_interval``
seconds. Two apps, written the way Quix's documentation shows them:

- ``passthrough``: ``sdf.to_topic(output)`` on the raw bytes: the ceiling of a Quix app;
- ``score``: JSON in, ``sdf.apply(score)`` per record with the same predictor ``muse worker`` routes
  the tenant to (its ``score_batch`` on a one-row matrix: the same model, bias correction and
  mapping; one xgboost thread), JSON out. Quix hands a function one record at a time; batching is left to the user.

Run as a process by ``muse bench throughput`` and ``muse bench latency``, in the interpreter that
``quix_python`` names (quixstreams pins confluent-kafka<2.13, so ``make setup`` gives it a venv of its
own, ``.venv-quix``, and muse's keeps the newest); it prints its processing guarantee and
transactional.id first, so a log shows the transactions are on::

    .venv-quix/bin/python -m muse_stream.bench.quix_baseline score --namespace NS --worker-id ID --commit-interval-ms 50
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from muse_stream.errors import MuseError
from muse_stream.topics import TopicNames

QUIX_DEFAULT_COMMIT_INTERVAL_MS = 5000  # quixstreams.Application(commit_interval=5.0)
QUIX_PYTHON_ENV = "MUSE_QUIX_PYTHON"
# What `make setup` creates beside the checkout that muse_stream is installed from (editable).
CHECKOUT_QUIX_PYTHON = Path(__file__).resolve().parents[2] / ".venv-quix" / "bin" / "python"


def quix_python() -> str:
    """The interpreter that runs the Quix apps, checked to import quixstreams and muse_stream:
    $MUSE_QUIX_PYTHON, else the checkout's .venv-quix, else this one (a venv with the bench extra)."""
    python = os.environ.get(QUIX_PYTHON_ENV) or (str(CHECKOUT_QUIX_PYTHON) if CHECKOUT_QUIX_PYTHON.exists() else sys.executable)
    try:
        found = (
            subprocess.run([python, "-c", "import quixstreams, muse_stream"], capture_output=True, timeout=120).returncode == 0
        )
    except OSError:
        found = False
    if not found:
        raise MuseError(
            f"the Quix Streams baseline runs in a Python with quixstreams and muse-stream installed, which {python} is not: "
            f"`make setup` creates .venv-quix with them, or set {QUIX_PYTHON_ENV} to another (or leave Quix out with --skip-quix)"
        )
    return python


def main(argv: Sequence[str]) -> int:
    from quixstreams import Application

    from muse_stream.broker import command_bootstrap

    parser = argparse.ArgumentParser(prog="python -m muse_stream.bench.quix_baseline")
    parser.add_argument("mode", choices=["passthrough", "score"])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--tenant", default="bank-a")
    parser.add_argument("--commit-interval-ms", type=int, default=QUIX_DEFAULT_COMMIT_INTERVAL_MS)
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING")
    bootstrap = command_bootstrap()
    names = TopicNames(args.namespace)
    app = Application(
        broker_address=bootstrap,
        consumer_group=names.worker_group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval_ms / 1000,
        state_dir=tempfile.mkdtemp(prefix="muse-quix-"),
        loglevel="WARNING",
        auto_create_topics=False,  # the bench created them
    )
    print(
        f"quix {args.mode}: processing_guarantee={app.config.processing_guarantee} "
        f"transactional.id={app.config.producer_extra_config['transactional.id']} "
        f"commit_interval={app.config.commit_interval}s",
        flush=True,
    )
    if args.mode == "passthrough":
        source = app.topic(names.input_topic(args.tenant), key_deserializer="bytes", value_deserializer="bytes")
        sink = app.topic(names.output_topic(args.tenant), key_serializer="bytes", value_serializer="bytes")
        app.dataframe(source).to_topic(sink)
    else:
        source = app.topic(names.input_topic(args.tenant), key_deserializer="bytes", value_deserializer="json")
        sink = app.topic(names.output_topic(args.tenant), key_serializer="bytes", value_serializer="json")
        app.dataframe(source).apply(_per_record_scorer(bootstrap, names, args.tenant)).to_topic(sink)
    app.run()
    return 0


def _per_record_scorer(bootstrap: str, names: TopicNames, tenant: str) -> Any:
    """The function a Quix user applies to each record: the tenant's live predictor from the same
    config ``muse worker`` reads, one event in, one result dict out."""
    from muse_stream.config.artifact_topic import KafkaArtifactStore
    from muse_stream.config.watcher import ConfigWatcher

    watcher = ConfigWatcher(bootstrap, names, artifact_store=KafkaArtifactStore(bootstrap, names)).start()
    watcher.wait_for_version(1, timeout=60)
    snapshot = watcher.current
    watcher.stop()
    decision = snapshot.route(tenant, None)
    predictor = decision.live
    # One thread: a one-row predict gains nothing from OpenMP, and on a busy machine its 2 spinning
    # threads made each call ~18x slower (20 against 368 records/s at load average 14). The
    # generous choice for the baseline.
    predictor.booster.set_param({"nthread": 1})

    def score(event: dict[str, Any]) -> dict[str, Any]:
        scores = predictor.score_batch(predictor.vectorize([event["features"]]))
        return {
            "event_id": event["event_id"],
            "tenant": tenant,
            "intent": decision.intent,
            "score": float(scores.mapped[0]),
            "predictor_id": predictor.id,
            "predictor_name": predictor.name,
            "predictor_version": predictor.version,
            "config_version": decision.config_version,
        }

    return score


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
