"""A model update in minutes, safely, against the real broker and a real worker: fit a shadow's map
from its live traffic, promote it under a guard; a miscalibrated promotion is rolled back by the guard."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.config.state import read_config_log
from muse_stream.events import ScoreResult, ShadowResult
from muse_stream.models import FileArtifactStore
from muse_stream.predictors import Predictor, PredictorSpec
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from muse_stream.transforms import AlertRateCurve, QuantileMap
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, read_committed
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANTS = ["bank-a", "bank-b"]
INTENT = "card-fraud"
CURVE = AlertRateCurve.default()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def miscalibrated(store: Path, good: Predictor, other: Predictor) -> Predictor:
    """``good``'s model with a quantile map fitted on ``other``'s corrected scores: what a model update
    without a refit does (the new model's scores through a map made for another model's)."""
    X, _ = generate_events(6000, seed=3)
    qmap = QuantileMap.fit(other.score_batch(X).corrected, CURVE)
    spec = PredictorSpec.model_validate({**good.spec.model_dump(mode="json"), "quantile_map": qmap.to_dict()})
    return Predictor.from_spec(spec, FileArtifactStore(store))


def alert_rates(scores: list[float]) -> dict[float, float]:
    array = np.asarray(scores)
    return {edge: float(np.mean(array >= edge)) for edge in CURVE.edges}


def off_target(rates: dict[float, float]) -> dict[float, float]:
    """Edge -> relative error of the observed alert rate against the reference's target."""
    return {edge: (rate - target) / target for (edge, rate), target in zip(rates.items(), CURVE.rates, strict=True)}


class Traffic:
    """Tenants' events, produced by a plain Kafka client: all at once, or steadily from a thread."""

    def __init__(self, bootstrap: str, names: TopicNames, *, seed: int, pool: int = 30_000) -> None:
        self.names = names
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        X, _ = generate_events(pool, seed=seed)
        self.features = events_as_dicts(X)  # each event its own row: fresh traffic is not the fit's
        self.sent: dict[str, int] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, prefix: str, n: int) -> list[str]:
        ids = []
        for i in range(n):
            tenant = TENANTS[i % len(TENANTS)]
            event_id = f"{prefix}{i}"
            value = orjson.dumps({"event_id": event_id, "features": self.features[self.total % len(self.features)]})
            self.producer.produce(self.names.input_topic(tenant), value, key=event_id.encode())
            self.producer.poll(0)
            self.sent[tenant] += 1
            ids.append(event_id)
        self.producer.flush(30)
        return ids

    def start_steady(self, prefix: str, per_second: int) -> None:
        def loop() -> None:
            batch = 0
            while not self._stop.is_set():
                self.send(f"{prefix}{batch}-", per_second // 10)
                batch += 1
                self._stop.wait(0.1)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_steady(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def results(bootstrap: str, names: TopicNames, expect: int) -> list[ScoreResult]:
    records = read_committed(bootstrap, [names.output_topic(t) for t in TENANTS], expect=expect, timeout=180, settle=1.0)
    return [ScoreResult.model_validate_json(value) for _, _, value in records]


@pytest.fixture
def predictors(tmp_path: Path) -> dict[str, Predictor]:
    live = small_predictor(tmp_path, name="fraud", version="1", seed=1, n_trees=60, max_depth=4, b=0.2)
    retrained = small_predictor(tmp_path, name="fraud", version="2", seed=2, n_trees=60, max_depth=4, b=0.05)
    return {"fraud-v1": live, "fraud-v2": miscalibrated(tmp_path, retrained, live)}


def start_deployment(kafka: BrokerHandle, names: TopicNames, predictors: dict[str, Predictor], tmp_path: Path) -> WorkerProcess:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), names, TENANTS)
    config = deployment(TENANTS, predictors, {(t, INTENT): ("fraud-v1", ("fraud-v2",)) for t in TENANTS})
    assert publish(kafka.bootstrap, names, config, predictors, tmp_path) == 1
    # A generous shadow budget: on a busy test machine a skipped shadow would only thin its traffic.
    return WorkerProcess(kafka.bootstrap, names.namespace, "w1", tmp_path, "--shadow-budget-ms", "5000").start()


def test_a_map_fitted_from_shadow_traffic_holds_the_target_alert_rates_after_promotion(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    predictors: dict[str, Predictor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ("--namespace", topic_names.namespace)
    worker = start_deployment(kafka, topic_names, predictors, tmp_path)
    traffic = Traffic(kafka.bootstrap, topic_names, seed=21)
    try:
        traffic.send("shadowed-", 10_000)
        assert len(results(kafka.bootstrap, topic_names, 10_000)) == 10_000, worker.log_tail()
        shadows = [
            ShadowResult.model_validate_json(v)
            for _, _, v in read_committed(kafka.bootstrap, [topic_names.shadow_topic], expect=10_000, timeout=60, settle=1.0)
        ]
        assert len(shadows) == 10_000
        # The retrained model through a map made for another model's scores misses the targets badly.
        assert max(abs(e) for e in off_target(alert_rates([s.score for s in shadows])).values()) > 0.5

        out = tmp_path / "fraud-v2-fit.json"
        code, _, err = run(
            capsys, "predictors", "fit", *ns, "--from-shadow", "fraud-v2", "--min-events", "12000", "--out", str(out)
        )
        assert code == 2 and not out.exists()
        assert "10000 events of shadow fraud-v2" in err and "(bank-a 5000, bank-b 5000)" in err
        assert "fewer than --min-events 12000" in err and "nothing was written" in err

        code, printed, err = run(
            capsys, "predictors", "fit", *ns, "--from-shadow", "fraud-v2", "--since", "30m", "--out", str(out)
        )
        assert code == 0, err
        assert "10000 events of shadow fraud-v2 (fraud:2, id " in printed
        assert "  bank-a                        5000" in printed and "  bank-b                        5000" in printed
        assert "predictor fraud:2-fit1 id " in printed and f"was 2, id {predictors['fraud-v2'].id[:12]}" in printed
        fitted = PredictorSpec.load(out)
        assert fitted.version == "2-fit1" and fitted.id != predictors["fraud-v2"].id
        assert fitted.model == predictors["fraud-v2"].spec.model and fitted.b == predictors["fraud-v2"].spec.b

        # The refit goes in as the shadow, then is promoted on every tenant under a guard.
        refit = {**predictors, "fraud-v2": Predictor.from_spec(fitted, FileArtifactStore(tmp_path))}
        config = deployment(TENANTS, refit, {(t, INTENT): ("fraud-v1", ("fraud-v2",)) for t in TENANTS})
        assert publish(kafka.bootstrap, topic_names, config, refit, tmp_path) == 2
        fresh_traffic = Traffic(kafka.bootstrap, topic_names, seed=22)  # events the fit never saw
        fresh_traffic.start_steady("fresh-", per_second=600)
        try:
            code, printed, err = run(
                capsys,
                "promote",
                *ns,
                "--all-tenants",
                INTENT,
                "--to",
                "fraud-v2",
                "--guard",
                "15s",
                "--tolerance",
                "0.3",
                "--guard-min-events",
                "1000",
            )
        finally:
            fresh_traffic.stop_steady()
        assert code == 0, err + printed
        assert "version 3 is live: fraud-v2 scores bank-a/card-fraud, bank-b/card-fraud" in printed
        assert "guard: passed; version 3 stays live" in printed
        fresh = [
            r
            for r in results(kafka.bootstrap, topic_names, traffic.total + fresh_traffic.total)
            if r.config_version == 3 and r.predictor_id == fitted.id
        ]
    finally:
        worker.stop()
    # Both tenants' fresh results together: at the 5% edge, 6,000 results give a standard error of
    # about 6% of the target, so 25% leaves room for the fit's own sampling error.
    assert len(fresh) >= 6000
    errors = off_target(alert_rates([r.score for r in fresh]))
    assert all(abs(error) <= 0.25 for error in errors.values()), errors


def test_the_guard_rolls_back_a_miscalibrated_promotion_and_every_event_is_scored_once(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    predictors: dict[str, Predictor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    worker = start_deployment(kafka, topic_names, predictors, tmp_path)
    traffic = Traffic(kafka.bootstrap, topic_names, seed=31)
    v1 = read_config_log(kafka.bootstrap, topic_names).bodies()
    try:
        traffic.send("before-", 200)
        assert len(results(kafka.bootstrap, topic_names, 200)) == 200, worker.log_tail()
        traffic.start_steady("during-", per_second=400)
        started = time.monotonic()
        try:
            code, printed, err = run(
                capsys,
                "promote",
                "--namespace",
                topic_names.namespace,
                "--all-tenants",
                INTENT,
                "--to",
                "fraud-v2",
                "--guard",
                "20s",
                "--tolerance",
                "0.2",
                "--guard-min-events",
                "300",
                "--yes",
            )  # past the plan's own warning, if any
            took = time.monotonic() - started
            time.sleep(1.0)  # a little traffic after the rollback, too
        finally:
            traffic.stop_steady()
        everything = results(kafka.bootstrap, topic_names, traffic.total)
    finally:
        worker.stop()
    assert code == 2, printed + err
    assert "version 2 is live: fraud-v2 scores bank-a/card-fraud, bank-b/card-fraud" in printed
    assert "guard: what it saw" in printed and " fail " in printed
    assert err.startswith("muse: error: guard: fraud-v2 drifted beyond 20%: ")
    assert "rolled back: version 3 is live, with version 1's config" in err
    assert took < 20.0, f"the guard took {took:.1f} s to roll back"
    assert read_config_log(kafka.bootstrap, topic_names).bodies() == v1
    # Every event scored exactly once, through the promotion and the rollback.
    per_id = Counter(r.event_id for r in everything)
    assert len(everything) == traffic.total and set(per_id.values()) == {1}
    by_version = Counter((r.config_version, r.predictor_id) for r in everything)
    assert by_version[(2, predictors["fraud-v2"].id)] >= 300
    assert by_version[(3, predictors["fraud-v1"].id)] > 0


def write_deployment_file(
    directory: Path, store: FileArtifactStore, predictors: dict[str, Predictor], live: str, shadow: str
) -> Path:
    """A deployment TOML with its model and spec files, as an operator keeps them; bank-a declares thresholds."""
    lines = ['[[intents]]\nname = "card-fraud"\n']
    for tenant in TENANTS:
        thresholds = "\nthresholds = [0.3, 0.9]" if tenant == "bank-a" else ""
        lines.append(f'[[tenants]]\nname = "{tenant}"\ndefault_intent = "card-fraud"{thresholds}\n')
    for name, p in predictors.items():
        model = p.spec.model
        (directory / f"{name}.model.json").write_bytes(store.get(model.sha256))
        p.spec.save(directory / f"{name}.json")
        lines.append(f'[[models]]\nname = "{model.name}"\nversion = "{model.version}"\npath = "{name}.model.json"\n')
        lines.append(f'[[predictors]]\nname = "{name}"\nspec = "{name}.json"\n')
    for tenant in TENANTS:
        lines.append(f'[[routes]]\ntenant = "{tenant}"\nintent = "card-fraud"\nlive = "{live}"\nshadows = ["{shadow}"]\n')
    path = directory / f"live-{live}.toml"
    path.write_text("\n".join(lines))
    return path


def test_a_plan_expects_a_miscalibrated_predictors_alert_rates_from_shadow_traffic_and_needs_yes(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    predictors: dict[str, Predictor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ("--namespace", topic_names.namespace)
    worker = start_deployment(kafka, topic_names, predictors, tmp_path)
    try:
        Traffic(kafka.bootstrap, topic_names, seed=41).send("recent-", 4000)
        assert len(results(kafka.bootstrap, topic_names, 4000)) == 4000, worker.log_tail()
        read_committed(kafka.bootstrap, [topic_names.shadow_topic], expect=4000, timeout=60, settle=0.5)
    finally:
        worker.stop()
    code, printed, err = run(capsys, "promote", *ns, "--all-tenants", INTENT, "--to", "fraud-v2")
    assert code == 2, printed
    assert (
        "expected alert rates of bank-a/card-fraud on recent traffic: now fraud-v1:1: 2000 live results; "
        "after fraud-v2:2: 2000 shadow scores" in printed
    )
    assert err.startswith("muse: error: promoting fraud-v2 would make fraud-v2:2 live on bank-a/card-fraud, expected to alert ")
    assert "nothing was published" in err
    assert read_config_log(kafka.bootstrap, topic_names).version == 1

    (tmp_path / "deploy").mkdir()
    topology = write_deployment_file(
        tmp_path / "deploy", FileArtifactStore(tmp_path), predictors, live="fraud-v2", shadow="fraud-v1"
    )
    code, printed, _ = run(capsys, "config", *ns, "plan", str(topology), "--since", "10m")
    assert code == 0
    rows = {tuple(line.split()[:2]) for line in printed.splitlines()}
    assert ("0.9", "tenant") in rows and ("0.3", "tenant") in rows and ("0.8", "0.0500") in rows
    assert (
        "will refuse this plan without --yes: its new live predictor is expected to miss the target alert rates "
        "on bank-a/card-fraud, bank-b/card-fraud" in printed
    )
    code, _, err = run(capsys, "config", *ns, "apply", str(topology))
    assert code == 2 and "would make fraud-v2:2 live on bank-a/card-fraud" in err
    code, printed, _ = run(capsys, "config", *ns, "apply", str(topology), "--yes")
    assert code == 0 and printed.strip().endswith("version 2 is live")
