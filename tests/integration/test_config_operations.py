"""Operating the config on a real broker through the CLI: the plan guard, history, rollback, promotion."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from config_support import write_topology

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.config.history import operator_identity
from muse_stream.config.state import read_config_log, read_history
from muse_stream.events import ScoreResult, ShadowResult
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
ALL_OF_V1 = "+3 tenants, +2 intents, +2 predictors, +4 routes, +2 models"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_destructive_apply_needs_yes_history_lists_every_version_and_rollback_publishes_a_new_one(
    kafka: BrokerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    config = ["config", "--namespace", names.namespace]
    topology = write_topology(tmp_path)
    code, out, _ = run(capsys, *config, "apply", str(topology))
    assert code == 0 and "+ tenant bank-a  default intent card-fraud" in out and out.strip().endswith("version 1 is live")
    v1 = read_config_log(kafka.bootstrap, names).bodies()

    # An empty file, as a new user might apply it: the plan says what goes, and nothing is published.
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    code, out, err = run(capsys, *config, "plan", str(empty))
    assert code == 0 and "- tenant bank-c" in out and "Plan: 0 to add, 0 to change, 13 to remove." in out
    assert "will refuse this plan without --yes" in out
    code, out, err = run(capsys, *config, "apply", str(empty))
    assert code == 2 and "    - card-fraud  was live fraud-v1, shadows fraud-v2" in out
    assert err.startswith(
        f"muse: error: {empty} would remove tenant bank-a, tenant bank-b, tenant bank-c, "
        "intent account-takeover, intent card-fraud, route bank-a/account-takeover"
    )
    assert err.strip().endswith("nothing was published. Check the plan above and add --yes to apply it anyway")
    live = read_config_log(kafka.bootstrap, names)
    assert live.version == 1 and live.bodies() == v1
    assert [e.version for e in read_history(kafka.bootstrap, names)] == [1]

    code, out, _ = run(capsys, *config, "apply", "--yes", str(empty))
    assert code == 0 and out.strip().endswith("version 2 is live")
    assert read_config_log(kafka.bootstrap, names).bodies() == {}

    # Rollback: version 1's content, published as version 3 through the same plan.
    code, out, _ = run(capsys, *config, "rollback", "1")
    assert code == 0 and "plan against live version 2:" in out and "Plan: 13 to add, 0 to change, 0 to remove." in out
    assert out.strip().endswith("version 3 is live, with version 1's config")
    live = read_config_log(kafka.bootstrap, names)
    assert live.version == 3 and live.bodies() == v1
    # Rolling back to the empty version is destructive again, so it needs --yes too.
    code, _, err = run(capsys, *config, "rollback", "2")
    assert code == 2 and "rolling back to version 2 would remove tenant bank-a" in err
    assert read_config_log(kafka.bootstrap, names).version == 3

    code, out, _ = run(capsys, *config, "history")
    header, *rows = out.splitlines()
    assert header.split() == ["version", "applied", "at", "applied", "by", "changes"]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert all(operator_identity() in row for row in rows)
    assert rows[0].endswith(ALL_OF_V1) and rows[2].endswith(ALL_OF_V1)
    assert rows[1].endswith("-3 tenants, -2 intents, -2 predictors, -4 routes, -2 models")

    for version, expected in ((1, v1), (2, {}), (3, v1)):
        code, out, _ = run(capsys, *config, "show", "--version", str(version))
        shown = orjson.loads(out)
        assert code == 0 and shown["config_version"] == version and shown["applied_by"] == operator_identity()
        assert {k: orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for k, v in shown["config"].items()} == expected
    code, _, err = run(capsys, *config, "show", "--version", "4")
    assert code == 2 and "there is no version 4: the history holds versions 1 to 3" in err


TENANT = "bank-a"


def test_a_running_worker_scores_with_the_promoted_predictor_and_again_with_the_old_one_after_rollback(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    predictors: dict[str, Predictor] = {
        "fraud-v1": small_predictor(tmp_path, name="fraud", version="1", seed=1),
        "fraud-v2": small_predictor(tmp_path, name="fraud", version="2", seed=2, max_depth=4),
    }
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [TENANT])
    config = deployment([TENANT], predictors, {(TENANT, "card-fraud"): ("fraud-v1", ("fraud-v2",))})
    assert publish(kafka.bootstrap, topic_names, config, predictors, tmp_path) == 1
    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    X, _ = generate_events(60, seed=9)
    features = events_as_dicts(X)
    sent = 0

    def score(prefix: str, n: int) -> list[ScoreResult]:
        """Send ``n`` events and return their results (read_committed, from the real worker)."""
        nonlocal sent
        values = [orjson.dumps({"event_id": f"{prefix}{i}", "features": features[i % len(features)]}) for i in range(n)]
        produce(kafka.bootstrap, topic_names.input_topic(TENANT), [(v[:12], v) for v in values])
        sent += n
        records = read_committed(kafka.bootstrap, [topic_names.output_topic(TENANT)], expect=sent, timeout=60, settle=0.3)
        results = [ScoreResult.model_validate_json(value) for _, _, value in records]
        return [r for r in results if r.event_id.startswith(prefix)]

    def wait_for_version(version: int) -> None:
        """Probe events until the worker scores with ``version`` (it swaps within about 2 s)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = score(f"probe{version}-{sent}-", 1)
            if probe and probe[0].config_version == version:
                return
        raise AssertionError(f"the worker never reached config version {version}\n{worker.log_tail()}")

    try:
        before = score("a", 20)
        assert len(before) == 20 and {(r.predictor_id, r.config_version) for r in before} == {(predictors["fraud-v1"].id, 1)}

        code, out, _ = run(capsys, "promote", "--namespace", topic_names.namespace, f"{TENANT}/card-fraud", "--to", "fraud-v2")
        assert code == 0, out
        assert "    ~ card-fraud  live fraud-v1 -> fraud-v2; shadows +fraud-v1 -fraud-v2" in out
        assert out.strip().endswith(f"version 2 is live: fraud-v2 scores {TENANT}/card-fraud")
        wait_for_version(2)
        promoted = score("b", 20)
        assert len(promoted) == 20 and {(r.predictor_id, r.config_version) for r in promoted} == {(predictors["fraud-v2"].id, 2)}

        code, out, _ = run(capsys, "config", "--namespace", topic_names.namespace, "rollback", "1")
        assert code == 0 and out.strip().endswith("version 3 is live, with version 1's config"), out
        wait_for_version(3)
        rolled_back = score("c", 20)
        assert len(rolled_back) == 20
        assert {(r.predictor_id, r.config_version) for r in rolled_back} == {(predictors["fraud-v1"].id, 3)}
        # version 1's behaviour: same events, same live predictor, same scores as before the promotion
        first = {r.event_id[1:]: r.score for r in before}
        assert {r.event_id[1:]: r.score for r in rolled_back} == first
        shadows = [
            ShadowResult.model_validate_json(v)
            for _, _, v in read_committed(kafka.bootstrap, [topic_names.shadow_topic], expect=1, timeout=30, settle=0.3)
        ]
    finally:
        worker.stop()
    # while fraud-v2 was live, the demoted fraud-v1 kept scoring the same events on the side
    demoted = {s.event_id for s in shadows if s.predictor_id == predictors["fraud-v1"].id and s.config_version == 2}
    assert {r.event_id for r in promoted} <= demoted
