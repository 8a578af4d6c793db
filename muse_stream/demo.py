"""The demo: three tenants, two intents, a retrained model shadowed and then promoted mid-stream.

It runs the real thing end to end: topology files applied to the config topic with the same code
as `muse config apply`, an exactly-once worker, synthetic events on the tenants' input topics, and
results read back with read_committed. The closing table shows what MUSE is for: each tenant's
alert rate at fixed thresholds stays on the reference curve across the model update, while raw
scores of the two models would have moved every threshold's alert rate.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import numpy as np
import orjson
from confluent_kafka import Producer

from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.producing import produce_acknowledged
from muse_stream.clients.reading import read_topics
from muse_stream.clients.settings import producer_config
from muse_stream.config.files import load_deployment_file
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.config.watcher import ConfigWatcher
from muse_stream.errors import MuseError
from muse_stream.events import LabelRecord
from muse_stream.labels import encode_label
from muse_stream.models import FileArtifactStore, ModelRegistry
from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard
from muse_stream.pipeline.worker import Worker, WorkerSettings
from muse_stream.synthetic import TrainingParams, events_as_dicts, generate_events, label_lateness
from muse_stream.synthetic_deployment import train_and_fit
from muse_stream.topics import TopicNames
from muse_stream.transforms import AlertRateCurve

TENANT_INTENTS = {"bank-a": ("card-fraud",), "bank-b": ("card-fraud",), "bank-c": ("card-fraud", "account-takeover")}
PHASES = (("v1.toml", "card-v1 live"), ("v2-shadow.toml", "card-v2 shadowing card-v1"), ("v3-promote.toml", "card-v2 promoted"))
SHADOW_PHASE_VERSION = 2  # the config version v2-shadow.toml becomes in a fresh namespace
THRESHOLDS = (0.5, 0.8)
# The demo's labels arrive on a compressed clock: a day of lateness (a chargeback's 5 days, the
# 30-day dispute window of a genuine event) lasts this many milliseconds.
DEMO_DAY_MS = 100.0
TOPOLOGY_RESOURCE = "demo_topologies"  # inside the muse_stream package (package data)


@dataclass(frozen=True)
class DemoPredictorRecipe:
    """What the demo trains for one predictor: the model's registry name and version, the
    predictor fitted on it, how the model is trained and with which seed."""

    model_name: str
    model_version: str
    predictor: str
    training: TrainingParams
    seed: int


DEMO_RECIPES = (
    DemoPredictorRecipe("card-gbm", "1", "card-v1", TrainingParams(n_trees=80, max_depth=4, b=0.10), seed=1),
    DemoPredictorRecipe("card-gbm", "2", "card-v2", TrainingParams(n_trees=150, max_depth=6, b=0.03), seed=2),
    DemoPredictorRecipe("ato-gbm", "1", "ato-v1", TrainingParams(n_trees=60, max_depth=3, b=0.25), seed=3),
)


def copy_packaged_topology(topology_dir: Path) -> None:
    """The demo's TOML files ship inside the package, so `muse demo` runs from any folder."""
    topology_dir.mkdir(parents=True, exist_ok=True)
    for file_name, _ in PHASES:
        (topology_dir / file_name).write_bytes(
            importlib.resources.files("muse_stream").joinpath(TOPOLOGY_RESOURCE, file_name).read_bytes()
        )


def prepare_topology(topology_dir: Path, say: Callable[[str], None]) -> None:
    """Train the demo's models and fit their predictors into the topology's models/ and predictors/."""
    (topology_dir / "models").mkdir(parents=True, exist_ok=True)
    (topology_dir / "predictors").mkdir(parents=True, exist_ok=True)
    X_train, y_train = generate_events(60_000, seed=100)
    X_fit, _ = generate_events(20_000, seed=101)  # unlabeled: quantile maps need no labels
    with tempfile.TemporaryDirectory() as store_dir:
        registry = ModelRegistry(FileArtifactStore(store_dir))
        for recipe in DEMO_RECIPES:
            began = time.monotonic()
            spec = train_and_fit(
                registry,
                X_train,
                y_train,
                X_fit,
                training=recipe.training,
                seed=recipe.seed,
                model_name=recipe.model_name,
                model_version=recipe.model_version,
                predictor_name=recipe.predictor,
                predictor_version=recipe.model_version,
            )
            (topology_dir / "models" / f"{recipe.model_name}-{recipe.model_version}.json").write_bytes(
                registry.store.get(spec.model.sha256)
            )
            spec.save(topology_dir / "predictors" / f"{recipe.predictor}.json")
            training = recipe.training
            say(
                f"  trained {recipe.model_name}:{recipe.model_version} ({training.n_trees} trees, depth {training.max_depth}, "
                f"negatives kept b={training.b}) and fitted predictor {recipe.predictor} in {time.monotonic() - began:.1f} s"
            )


@contextlib.contextmanager
def _working_topology(topology_dir: Path | None) -> Iterator[Path]:
    """``topology_dir`` if given (kept afterwards), else a temporary directory removed afterwards."""
    if topology_dir is not None:
        yield topology_dir
        return
    with tempfile.TemporaryDirectory(prefix="muse-demo-") as tmp:
        yield Path(tmp)


class _EventSource:
    """Synthetic events for the tenants, and later their labels; remembers each event's features
    to recompute raw scores."""

    def __init__(self, bootstrap: str, names: TopicNames) -> None:
        self.names = names
        self.producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
        self.features: dict[str, np.ndarray] = {}
        self._seed = 1000
        # (when the label becomes known, ms; tenant; event id; label), in the order sent
        self._outcomes: list[tuple[int, str, str, int]] = []
        self.labels_sent = 0

    def send(self, events_per_tenant: int) -> int:
        records: list[tuple[str, bytes, bytes]] = []
        outcomes: list[tuple[str, list[str], np.ndarray, int]] = []  # per tenant: ids, labels, seed
        for tenant, intents in TENANT_INTENTS.items():
            self._seed += 1
            X, y = generate_events(events_per_tenant, seed=self._seed)
            topic = self.names.input_topic(tenant)
            ids = [f"{tenant}-{self._seed}-{i}" for i in range(events_per_tenant)]
            outcomes.append((tenant, ids, y, self._seed))
            for i, (event_id, features) in enumerate(zip(ids, events_as_dicts(X), strict=True)):
                self.features[event_id] = X[i]
                intent = intents[i % len(intents)]
                records.append(
                    (topic, event_id.encode(), orjson.dumps({"event_id": event_id, "intent": intent, "features": features}))
                )
        sent = produce_acknowledged(self.producer, records, what="the demo's events")
        sent_ms = int(time.time() * 1000)  # after every event's timestamp: labels come later
        for tenant, ids, y, seed in outcomes:
            known_at = sent_ms + label_lateness(y, seed=seed, day_ms=DEMO_DAY_MS)
            self._outcomes += zip(known_at.tolist(), [tenant] * len(ids), ids, y.tolist(), strict=True)
        return sent

    def send_labels(self) -> int:
        """Publish the labels known by now (to the tenants' labels topics, as `muse labels load`
        does); the rest stay unknown, as the newest events' outcomes are in a real backtest."""
        now_ms = int(time.time() * 1000)
        due = [outcome for outcome in self._outcomes if outcome[0] <= now_ms]
        self._outcomes = [outcome for outcome in self._outcomes if outcome[0] > now_ms]
        records = [
            (
                self.names.labels_topic(tenant),
                *encode_label(
                    LabelRecord(
                        event_id=event_id,
                        label=cast("Literal[0, 1]", label),
                        labelled_at=datetime.fromtimestamp(known_ms / 1000, UTC),
                    )
                ),
            )
            for known_ms, tenant, event_id, label in due
        ]
        self.labels_sent += produce_acknowledged(self.producer, records, what="the demo's labels")
        return len(records)


def _read(bootstrap: str, topics: list[str], expect: int, timeout: float = 120.0) -> list[tuple[str, dict]]:
    records = read_topics(bootstrap, topics, expect=expect, timeout=timeout, settle=0.5)
    if len(records) < expect:
        raise MuseError(f"only {len(records)} of {expect} results arrived on {topics} within {timeout:.0f} s")
    return [(topic, orjson.loads(value)) for topic, _, value in records if value is not None]


def run_demo(
    bootstrap: str,
    topology_dir: Path | None = None,
    *,
    events_per_tenant: int = 4000,
    keep_topics: bool = False,
    shadow_budget_ms: float | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Run the demo; ``topology_dir``: where to write the topology (the packaged TOML files, trained
    models, fitted predictors) to keep it, else a temporary directory. Nothing goes into the cwd."""
    with _working_topology(topology_dir) as workdir:
        copy_packaged_topology(workdir)
        say("training the demo models (seeded, no labels needed for the quantile maps):")
        prepare_topology(workdir, say)
        return _stream(
            bootstrap,
            workdir,
            events_per_tenant=events_per_tenant,
            keep_topics=keep_topics,
            shadow_guard=ShadowGuard() if shadow_budget_ms is None else ShadowGuard(budget_ms=shadow_budget_ms),
            say=say,
        )


def _stream(
    bootstrap: str,
    topology_dir: Path,
    *,
    events_per_tenant: int,
    keep_topics: bool,
    shadow_guard: ShadowGuard,
    say: Callable[[str], None],
) -> dict:
    names = TopicNames(f"demo-{uuid.uuid4().hex[:8]}")
    say(f"namespace {names.namespace}: each tenant's topics are {names.namespace}.tenant.<tenant>.{{input,output,dlq,labels}}")
    admin = TopicAdmin(bootstrap)
    ensure_tenant_topics(admin, names, list(TENANT_INTENTS))
    say(f"tenants {', '.join(TENANT_INTENTS)} created")

    publisher = ConfigPublisher(bootstrap, names)
    watcher = ConfigWatcher(bootstrap, names, artifact_store=publisher.artifacts).start()
    source = _EventSource(bootstrap, names)
    worker: Worker | None = None
    thread: threading.Thread | None = None
    phase_of_version: dict[int, str] = {}
    sent = 0
    try:
        for number, (file_name, label) in enumerate(PHASES):
            loaded = load_deployment_file(topology_dir / file_name)
            began = time.monotonic()
            version = publisher.publish(loaded.config, loaded.artifact_bytes()).version
            watcher.wait_for_version(version, timeout=30)
            phase_of_version[version] = label
            say(
                f"applied {file_name} as config version {version} ({label}); live in the worker after "
                f"{(time.monotonic() - began) * 1000:.0f} ms"
            )
            if worker is None:
                # In-process, so the demo can read the shadow guard's counters.
                worker = Worker(
                    WorkerSettings(bootstrap=bootstrap, names=names, worker_id="demo"),
                    watcher.live_snapshot,
                    scorer=BatchScorer(names, shadow_guard=shadow_guard),
                )
                thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
                thread.start()
            sent += source.send(events_per_tenant)
            # Let this phase's events be scored before the next change, so the phases read cleanly.
            _read(bootstrap, [names.output_topic(t) for t in TENANT_INTENTS], expect=sent)
            labelled = source.send_labels()
            say(f"  phase {number + 1}: {events_per_tenant} events per tenant scored; {labelled} labels arrived")
        outputs = _read(bootstrap, [names.output_topic(t) for t in TENANT_INTENTS], expect=sent)
        distinct = len({r["event_id"] for _, r in outputs})
        if distinct != sent or len(outputs) != sent:
            raise MuseError(f"{sent} events sent but {len(outputs)} results for {distinct} distinct events came back")
        # Live results and shadow results commit in one transaction: with every live result read,
        # every shadow result there will be is committed too.
        shadowed = sum(1 for _, r in outputs if r["config_version"] == SHADOW_PHASE_VERSION and r["intent"] == "card-fraud")
        skipped = sum(shadow_guard.skipped_events.values())
        shadows = _read(bootstrap, [names.shadow_topic], expect=max(shadowed - skipped, 0))
        check_shadows(shadowed, shadows, skipped)
        summary = _summarize(outputs, shadows, source.features, watcher, phase_of_version, say)
        if keep_topics:
            say("")
            say(
                f"topics kept: replay and backtest them, labels included ({source.labels_sent} arrived), with\n"
                f"  muse replay --namespace {names.namespace} --all-tenants --config live --out demo-replay\n"
                "  muse backtest demo-replay"
            )
        return {
            **summary,
            "namespace": names.namespace,
            "labels": source.labels_sent,
            "events": sent,
            "results": len(outputs),
            "shadowed_events": shadowed,
            "shadow_skipped": skipped,
            "shadow_trips": sum(shadow_guard.failures.values()),
        }
    finally:
        if worker is not None:
            worker.stop()
            assert thread is not None
            thread.join(30)
        watcher.stop()
        if not keep_topics:
            delete_namespace(admin, names)


def check_shadows(shadowed: int, shadows: list[tuple[str, dict]], skipped: int) -> None:
    """At most one shadow result per shadowed event, and the guard's skipped count explains the rest:
    skipping a slow shadow is documented behaviour (live results never wait on one)."""
    per_event: dict[str, int] = defaultdict(int)
    for _, result in shadows:
        per_event[result["event_id"]] += 1
    repeated = sorted(event_id for event_id, n in per_event.items() if n > 1)
    if repeated:
        raise MuseError(
            f"shadow results repeated for {len(repeated)} events (e.g. {repeated[0]}): "
            "exactly-once is broken; see the worker's log"
        )
    if len(shadows) > shadowed or len(shadows) + skipped < shadowed:
        raise MuseError(
            f"{shadowed} events were shadowed but {len(shadows)} shadow results arrived and the shadow "
            f"guard skipped {skipped}; see the worker's log for what happened to the rest"
        )


def closing_line(summary: dict) -> str:
    skipped = summary["shadow_skipped"]
    skipped_text = (
        f" ({skipped} skipped: the shadow exceeded its time budget {summary['shadow_trips']} times, "
        "and live results never wait on a shadow)"
        if skipped
        else ""
    )
    return (
        f"{summary['events']} events in, {summary['results']} results out (one per event id), "
        f"{summary['shadow_results']} shadow scores for {summary['shadowed_events']} shadowed events{skipped_text}; "
        "no tenant threshold was touched."
    )


def _summarize(
    outputs: list[tuple[str, dict]],
    shadows: list[tuple[str, dict]],
    features: dict[str, np.ndarray],
    watcher: ConfigWatcher,
    phase_of_version: dict[int, str],
    say: Callable[[str], None],
) -> dict:
    predictors = {p.id: p for p in watcher.current.predictors.values()}
    targets = AlertRateCurve.default().alert_rate_at(np.array(THRESHOLDS))
    groups: dict[tuple[str, str, int, str], list[tuple[str, float]]] = defaultdict(list)
    for _, result in outputs:
        groups[(result["tenant"], result["intent"], result["config_version"], result["predictor_id"])].append(
            (result["event_id"], result["score"])
        )
    header = (
        f"{'tenant':8} {'intent':17} {'config':>6} {'predictor':10} {'events':>6}  "
        + "  ".join(f"alerts>={t:<4}" for t in THRESHOLDS)
        + "   "
        + "  ".join(f"raw>={t:<4}" for t in THRESHOLDS)
    )
    say("")
    say("Alert rate per tenant at fixed thresholds (the tenants' thresholds never change):")
    say(
        "reference curve target: "
        + ", ".join(f"{target:.0%} of events >= {t}" for t, target in zip(THRESHOLDS, targets, strict=True))
    )
    say(header)
    rows = []
    for (tenant, intent, version, predictor_id), scored in sorted(groups.items()):
        predictor = predictors[predictor_id]
        mapped = np.array([score for _, score in scored])
        raw = predictor.score_batch(np.stack([features[event_id] for event_id, _ in scored])).raw
        alert_rate = {str(t): float(np.mean(mapped >= t)) for t in THRESHOLDS}
        raw_alert_rate = {str(t): float(np.mean(raw >= t)) for t in THRESHOLDS}
        row = {
            "tenant": tenant,
            "intent": intent,
            "config_version": version,
            "phase": phase_of_version.get(version, ""),
            "predictor": f"{predictor.name}:{predictor.version}",
            "events": len(scored),
            "alert_rate": alert_rate,
            "raw_alert_rate": raw_alert_rate,
        }
        rows.append(row)
        say(
            f"{tenant:8} {intent:17} {version:>6} {row['predictor']:10} {len(scored):>6}  "
            + "  ".join(f"{alert_rate[str(t)]:>10.1%}" for t in THRESHOLDS)
            + "   "
            + "  ".join(f"{raw_alert_rate[str(t)]:>8.1%}" for t in THRESHOLDS)
        )
    shadow_scores = np.array([s["score"] for _, s in shadows])
    live_scores = np.array([s["live_score"] for _, s in shadows])
    if shadow_scores.size:
        say("")
        say(
            f"shadow: {shadow_scores.size} events scored by card-v2 on the side, never returned to a tenant; "
            + ", ".join(
                f"at >= {t} it would alert {np.mean(shadow_scores >= t):.1%} vs live {np.mean(live_scores >= t):.1%}"
                for t in THRESHOLDS
            )
        )
    return {"rows": rows, "shadow_results": int(shadow_scores.size)}
