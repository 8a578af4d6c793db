"""What the README's "For tenant clients" section shows, done against the real broker with clients
that are not ours: kcat produces keyed events and reads results and dead letters with
read_committed, and the README's confluent-kafka snippet (examples/tenant_client.py, included in the
README verbatim) runs as it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.events import DeadLetter, RejectReason, ScoreResult
from muse_stream.predictors import Predictor
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "examples" / "tenant_client.py"
TENANT = "bank-a"
GOOD = '{"event_id": "tx-123", "intent": "card-fraud", "features": {"amount_log": 3.2, "hour_sin": -0.5}}'
BAD = '{"event_id": "tx-124", "features": '


def kcat() -> str:
    """kcat's path; a missing kcat fails the test (never skips it): `make setup` installs it."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not installed: `make setup` installs it as root with apt-get, "
            "or install it yourself (Debian/Ubuntu: apt-get install kcat)",
            pytrace=False,
        )
    return path


@pytest.fixture
def predictor(tmp_path: Path) -> tuple[Predictor, Path]:
    store = tmp_path / "models"
    return small_predictor(store, name="fraud", version="1"), store


@pytest.fixture
def deployed(
    kafka: BrokerHandle, topic_names: TopicNames, predictor: tuple[Predictor, Path], tmp_path: Path
) -> Iterator[WorkerProcess]:
    """One tenant routed to a real predictor, and a running worker."""
    model, store = predictor
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT])
    publish(
        kafka.bootstrap,
        topic_names,
        deployment([TENANT], {"fraud-v1": model}, {(TENANT, "card-fraud"): ("fraud-v1", ())}),
        {"fraud-v1": model},
        store,
    )
    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    yield worker
    worker.stop()


def kcat_consume(bootstrap: str, topic: str) -> tuple[str, dict[str, object]]:
    """The first committed record of a topic, read as the README shows: (key, value)."""
    out = subprocess.run(
        [
            kcat(),
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-c",
            "1",
            "-X",
            "isolation.level=read_committed",
            "-f",
            "%k\t%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    key, _, value = out.rstrip("\n").partition("\t")
    return key, json.loads(value)


def test_kcat_produces_keyed_events_and_reads_result_and_dead_letter_with_the_same_keys(
    kafka: BrokerHandle, topic_names: TopicNames, deployed: WorkerProcess
) -> None:
    subprocess.run(
        [kcat(), "-b", kafka.bootstrap, "-P", "-t", topic_names.input_topic(TENANT), "-K", "|"],
        input=f"card-42|{GOOD}\ncard-43|{BAD}\n",
        text=True,
        timeout=60,
        check=True,
    )

    key, value = kcat_consume(kafka.bootstrap, topic_names.output_topic(TENANT))
    result = ScoreResult.model_validate(value)
    assert key == "card-42", deployed.log_tail()
    assert (result.event_id, result.tenant, result.intent) == ("tx-123", TENANT, "card-fraud")
    assert 0.0 <= result.score <= 1.0
    assert (result.predictor_name, result.predictor_version, result.config_version) == ("fraud", "1", 1)

    key, value = kcat_consume(kafka.bootstrap, topic_names.dlq_topic(TENANT))
    letter = DeadLetter.model_validate(value)
    assert key == "card-43"
    assert letter.reason_code is RejectReason.MALFORMED_JSON
    assert letter.source.topic == topic_names.input_topic(TENANT) and letter.source.offset == 1
    assert value["original_key_b64"] == "Y2FyZC00Mw=="  # base64 of card-43


def test_the_readme_python_snippet_runs_as_shown(kafka: BrokerHandle, topic_names: TopicNames, deployed: WorkerProcess) -> None:
    snippet = SNIPPET.read_text()
    assert f"```python\n{snippet}```" in (ROOT / "README.md").read_text(), (
        "README.md must include examples/tenant_client.py verbatim in a ```python block"
    )
    env = {**os.environ, "MUSE_BOOTSTRAP": kafka.bootstrap, "TENANT_TOPICS": topic_names.tenant_prefix(TENANT)}
    out = subprocess.run([sys.executable, str(SNIPPET)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + deployed.log_tail()
    topic, key, value = out.stdout.strip().split(" ", 2)
    assert (topic, key) == (topic_names.output_topic(TENANT), "card-42")
    result = ScoreResult.model_validate_json(value)
    assert (result.event_id, result.tenant) == ("tx-123", TENANT)
