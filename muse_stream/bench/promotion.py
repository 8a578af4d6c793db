"""``muse bench promotion``: the lead time of a model update, from a registered retrained model to
live in every worker, under a steady load, and what tenants see after it.

Setup (not timed): a fresh namespace with 3 tenants (``--partitions`` each) routed to ``fraud-v1``,
2 ``muse worker`` processes (``--metrics-port``; ``--shadow-budget-ms`` 1000 by default, since the
worker's 50 ms trips on a busy 2-core machine and a tripped shadow is skipped for 30 s), a producer in its own process offering ``--rate``
events/s round-robin over the tenants (``bench/steady_load.py``), and a retrained model ``fraud-v2``
registered in a local store with a map fitted offline. Then, timed, each step an operator takes,
through the code the commands run:

1. add as shadow: ``config apply`` of the config with fraud-v2 a shadow on every route (plan, model
   upload, publication);
2. collect: until the shadow topic holds ``--shadow-events`` committed scores of fraud-v2;
3. fit: ``predictors fit --from-shadow``: read the latest N of them, refit the map onto the live
   predictor's reference, write the spec (version ``2-fit1``);
4. plan: the promotion's plan against the live config, with the alert rates expected on every route
   from recent traffic (``config plan`` of a file where fraud-v2, refitted, is live);
5. promote: its guard (``plan.check``) and publication, the old live predictor kept as a shadow;
6. live in every worker: until both workers' ``muse_worker_config_version`` shows the new version.

Then ``--fresh-events`` results of the promoted predictor on traffic the fit never saw (every event's
features are a new row) give the relative alert-rate error at each reference edge (the guard's own
judgement, monitor/guard.py), the load stops, the workers drain, and a verifier reads every output and
DLQ record read_committed (bench/exactly_once.py): no event lost or duplicated, no partition's config
version going back, every result scored by the live predictor of the version it names.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families

from muse_stream.bench.exactly_once import Outcome, Verdict, verify
from muse_stream.bench.progress import committed_counter, marker_counter, wait_for
from muse_stream.bench.steady_load import SteadyLoad
from muse_stream.bench.throughput import bench_predictor
from muse_stream.bench.workers import WorkerProcess
from muse_stream.bench.workload import bench_names
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.recent_scores import read_shadow_scores
from muse_stream.config.deployment import DeploymentConfig, PredictorConfig
from muse_stream.config.history import config_at
from muse_stream.config.operations import live_config, plan_against_live, publish_with_plan, render_plan
from muse_stream.config.promotion import promote, routes_of_intent
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.config.state import read_history
from muse_stream.defaults import PROMOTION_SHADOW_EVENTS
from muse_stream.errors import MuseError
from muse_stream.events import DeadLetter, ScoreResult
from muse_stream.monitor.aggregates import add_scores, reference_targets
from muse_stream.monitor.guard import RouteJudgement, judge_route
from muse_stream.predictors import Predictor, PredictorSpec
from muse_stream.predictors.fitting import DEFAULT_RATE_TOLERANCE, missed_rates
from muse_stream.predictors.refit import reference_of, refit_spec
from muse_stream.replay.sources import read_ranges, window_ranges
from muse_stream.replay.window import Window
from muse_stream.synthetic_deployment import artifact_bytes, deployment, publish, train_predictor
from muse_stream.topics import TopicNames

TENANTS = ("bank-a", "bank-b", "bank-c")
INTENT = "card-fraud"
WORKERS = 2
LIVE, CANDIDATE = "fraud-v1", "fraud-v2"
GOAL_STEP_S = 5.0  # every step but the collection
GOAL_UPDATE_S = 120.0  # the whole update, with the default 50,000 shadow scores
GOAL_UPDATE_EVENTS = PROMOTION_SHADOW_EVENTS
GOAL_RELATIVE_ERROR = 0.10  # at every reference edge, all tenants' fresh results together
COLLECT = "collect"


@dataclass(frozen=True)
class Step:
    key: str  # stable, for the JSON line
    name: str  # what the table says
    seconds: float

    @property
    def goal_s(self) -> float | None:
        return None if self.key == COLLECT else GOAL_STEP_S


@dataclass
class PromotionReport:
    namespace: str
    rate: float
    partitions: int
    shadow_events: int
    steps: list[Step] = field(default_factory=list)
    promoted_version: int = 0
    fitted: str = ""  # name:version id
    fitted_id: str = ""
    worker_versions: dict[str, int] = field(default_factory=dict)  # after the last step
    achieved_rate: float = float("nan")
    fresh: list[RouteJudgement] = field(default_factory=list)  # per tenant, then all together (last)
    verdict: Verdict | None = None
    plan: list[str] = field(default_factory=list)

    @property
    def update_seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def goals(self) -> dict[str, bool]:
        goals = {
            f"every step but the collection < {GOAL_STEP_S:g} s": all(
                s.seconds < s.goal_s for s in self.steps if s.goal_s is not None
            )
        }
        if self.shadow_events >= GOAL_UPDATE_EVENTS:  # the goal is set for N = 50,000
            goals[f"whole update < {GOAL_UPDATE_S:g} s"] = self.update_seconds < GOAL_UPDATE_S
        overall = self.fresh[-1] if self.fresh else None
        goals[f"after promotion within {GOAL_RELATIVE_ERROR:.0%} of target at every edge"] = overall is not None and all(
            e.relative_error is not None and abs(e.relative_error) < GOAL_RELATIVE_ERROR for e in overall.edges
        )
        goals["promoted version live in every worker"] = bool(self.worker_versions) and set(self.worker_versions.values()) == {
            self.promoted_version
        }
        goals["0 lost, 0 duplicated, 0 mixed"] = self.verdict is not None and self.verdict.ok
        return goals

    def figures(self) -> dict[str, Any]:
        overall = self.fresh[-1] if self.fresh else None
        return {
            "bench": "promotion",
            "namespace": self.namespace,
            "tenants": len(TENANTS),
            "partitions": self.partitions,
            "workers": WORKERS,
            "rate": self.rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "shadow_events": self.shadow_events,
            "steps": {s.key: round(s.seconds, 3) for s in self.steps},
            "update_seconds": round(self.update_seconds, 3),
            "promoted_version": self.promoted_version,
            "fitted": self.fitted,
            "fitted_id": self.fitted_id,
            "worker_versions": self.worker_versions,
            "fresh_results": overall.count if overall else 0,
            "fresh_relative_error": {
                j.route: {e.threshold: None if e.relative_error is None else round(e.relative_error, 5) for e in j.edges}
                for j in self.fresh
            },
            "fresh_alert_rates": {
                j.route: {e.threshold: None if e.observed is None else round(e.observed, 6) for e in j.edges} for j in self.fresh
            },
            "exactly_once": self.verdict.figures() if self.verdict else None,
            "load_average": os.getloadavg()[0],
            "goals": self.goals(),
        }

    def render(self) -> list[str]:
        lines = [
            f"promotion: a retrained model from registered to live on {len(TENANTS)} tenants x {self.partitions} partitions, "
            f"{WORKERS} workers, {self.rate:,.0f} events/s offered ({self.achieved_rate:,.0f} produced); "
            f"load average {os.getloadavg()[0]:.1f} at the end",
            f"{'step':<52}{'seconds':>9}  goal",
        ]
        for s in self.steps:
            goal = "-" if s.goal_s is None else f"< {s.goal_s:g} s: {'met' if s.seconds < s.goal_s else 'NOT met'}"
            lines.append(f"{s.name:<52}{s.seconds:>9.2f}  {goal}")
        whole = "-"
        if self.shadow_events >= GOAL_UPDATE_EVENTS:
            whole = f"< {GOAL_UPDATE_S:g} s: {'met' if self.update_seconds < GOAL_UPDATE_S else 'NOT met'}"
        lines.append(f"{'whole update':<52}{self.update_seconds:>9.2f}  {whole}")
        lines.append(
            "workers' config version after the last step: "
            + ", ".join(f"{w} {v}" for w, v in sorted(self.worker_versions.items()))
            + f" (promoted: {self.promoted_version}, {self.fitted})"
        )
        if self.fresh:
            overall = self.fresh[-1]
            lines.append(
                f"alert rates of {self.fitted} on fresh traffic after the promotion ({overall.count:,} results "
                f"of version {self.promoted_version}; goal: within {GOAL_RELATIVE_ERROR:.0%} of target at every edge, all tenants):"
            )
            edges = [e.threshold for e in overall.edges]
            lines.append(f"  {'':<14}{'results':>8}" + "".join(f"{'>=' + t:>22}" for t in edges))
            lines.append(f"  {'target':<14}{'':>8}" + "".join(f"{e.target:>22.4f}" for e in overall.edges))
            for judgement in self.fresh:
                cells = "".join(
                    f"{'-':>22}" if e.observed is None else f"{f'{e.observed:.4f} ({e.relative_error:+.1%})':>22}"
                    for e in judgement.edges
                )
                lines.append(f"  {judgement.route:<14}{judgement.count:>8,}{cells}")
        if self.verdict is not None:
            lines.extend(self.verdict.render())
        lines.append("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in self.goals().items()))
        return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_version_served(port: int) -> int | None:
    """``muse_worker_config_version`` on a worker's /metrics; None while it does not answer yet."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "muse_worker_config_version":
            return int(family.samples[0].value)
    return None


def wait_for_version(ports: Mapping[str, int], version: int, *, timeout: float, alive: Callable[[], bool]) -> dict[str, int]:
    """Until every worker serves ``version`` (or a later one); their versions then."""
    deadline = time.monotonic() + timeout
    while True:
        versions = {worker: config_version_served(port) or 0 for worker, port in ports.items()}
        if min(versions.values()) >= version:
            return versions
        if not alive():
            raise MuseError("a worker under test exited")
        if time.monotonic() > deadline:
            raise MuseError(
                f"workers still serve config versions {versions} {timeout:.0f} s after version {version} was published"
            )
        time.sleep(0.02)


def with_spec(config: DeploymentConfig, name: str, spec: PredictorSpec) -> DeploymentConfig:
    """``config`` with predictor ``name`` running ``spec`` (a refitted map): what an operator's edit
    of the predictor's spec file in the deployment TOML does."""
    return DeploymentConfig.from_entries(
        [PredictorConfig(name=name, spec=spec) if e.key == f"predictor/{name}" else e for e in config.entries()]
    )


def live_predictors_by_version(bootstrap: str, names: TopicNames, last: int) -> dict[int, dict[str, str]]:
    """Version -> route (tenant/intent) -> live predictor id, rebuilt from the history topic."""
    history = read_history(bootstrap, names)
    by_version: dict[int, dict[str, str]] = {}
    for version in range(1, last + 1):
        config = config_at(history, version)
        by_version[version] = {f"{r.tenant}/{r.intent}": config.predictor(r.live).id for r in config.routes}
    return by_version


def read_outcomes(bootstrap: str, names: TopicNames) -> list[tuple[Outcome, float | None]]:
    """Every committed record of the tenants' output and DLQ topics, in offset order per partition,
    with a result's score."""
    existing = TopicAdmin(bootstrap).existing_topics()
    topics = {t: existing[t] for tenant in TENANTS for t in (names.output_topic(tenant), names.dlq_topic(tenant))}
    found: list[tuple[Outcome, float | None]] = []
    for batch in read_ranges(bootstrap, window_ranges(bootstrap, topics, Window()), batch_size=50_000):
        for record in batch:
            value = record.value() or b""
            if record.topic().endswith(".dlq"):
                dead = DeadLetter.model_validate_json(value)
                found.append(
                    (Outcome(record.topic(), record.partition(), (record.key() or b"").decode(), dead.config_version), None)
                )
            else:
                r = ScoreResult.model_validate_json(value)
                route = f"{r.tenant}/{r.intent}"
                found.append(
                    (Outcome(record.topic(), record.partition(), r.event_id, r.config_version, route, r.predictor_id), r.score)
                )
    return found


def fresh_judgements(
    outcomes: list[tuple[Outcome, float | None]], version: int, predictor_id: str, reference_owner: Predictor
) -> list[RouteJudgement]:
    """Per tenant and for all tenants together: the promoted predictor's alert rates at the reference
    edges on its results under the promoted version, judged as ``promote --guard`` judges them."""
    curve = reference_of(reference_owner.spec.quantile_map, owner=f"predictor {reference_owner.spec.name}")
    targets = reference_targets(curve)
    scores: dict[str, list[tuple[float, str]]] = {tenant: [] for tenant in TENANTS}
    for outcome, score in outcomes:
        if outcome.config_version == version and outcome.predictor_id == predictor_id and score is not None:
            scores[(outcome.route or "").split("/")[0]].append((score, str(version)))
    stats = {tenant: add_scores(None, pairs, thresholds=curve.edges) for tenant, pairs in scores.items()}
    every = add_scores(None, [pair for pairs in scores.values() for pair in pairs], thresholds=curve.edges)

    def judge(route: str, route_stats: Mapping[str, Any]) -> RouteJudgement:
        return judge_route(route, route_stats, targets, tolerance=GOAL_RELATIVE_ERROR, min_events=1)

    return [*(judge(tenant, s) for tenant, s in stats.items()), judge("all tenants", every)]


def run_promotion(
    bootstrap: str, args: argparse.Namespace, tmp_path: Path, echo: Callable[[str], None] = print
) -> PromotionReport:
    names = bench_names("benchp")
    report = PromotionReport(names.namespace, args.rate, args.partitions, args.shadow_events)
    publisher = ConfigPublisher(bootstrap, names)
    echo(f"training fraud-v1 and the retrained fraud-v2 ({args.trees} trees, depth {args.depth}); namespace {names.namespace}")
    live = bench_predictor(tmp_path, trees=args.trees, depth=args.depth, seed=0, name="fraud", version="1")
    # The retrained model, registered in the local store with a map fitted offline (synthetic_deployment).
    retrained = train_predictor(
        tmp_path, name="fraud", version="2", n_trees=args.trees, max_depth=args.depth, b=0.05, seed=1, n_train=20_000
    )
    inputs = [(names.input_topic(t), p) for t in TENANTS for p in range(args.partitions)]
    workers: dict[str, WorkerProcess] = {}
    ports: dict[str, int] = {}
    load: SteadyLoad | None = None
    try:
        ensure_tenant_topics(TopicAdmin(bootstrap), names, TENANTS, partitions=args.partitions)
        first = deployment(TENANTS, {LIVE: live}, {(t, INTENT): (LIVE, ()) for t in TENANTS})
        publish(bootstrap, names, first, {LIVE: live}, tmp_path)
        for number in range(1, WORKERS + 1):
            worker_id = f"w{number}"
            ports[worker_id] = free_port()
            workers[worker_id] = WorkerProcess(
                bootstrap,
                names.namespace,
                worker_id,
                tmp_path,
                "--metrics-port",
                str(ports[worker_id]),
                "--shadow-budget-ms",
                str(args.shadow_budget_ms),
            ).start()

        def alive() -> bool:
            return all(w.alive() for w in workers.values())

        wait_for_version(ports, 1, timeout=180, alive=alive)
        load = SteadyLoad(bootstrap, [names.input_topic(t) for t in TENANTS], args.rate).start()
        # Warm: both workers scoring the steady load before the clock starts.
        wait_for(committed_counter(bootstrap, names.worker_group, inputs), int(args.rate * 2), timeout=180, alive=alive)
        echo(f"steady load of {args.rate:,.0f} events/s over {len(TENANTS)} tenants scored by {WORKERS} workers; updating")

        started = time.monotonic()
        shadowed = deployment(TENANTS, {LIVE: live, CANDIDATE: retrained}, {(t, INTENT): (LIVE, (CANDIDATE,)) for t in TENANTS})
        added = publish_with_plan(
            publisher, shadowed, artifact_bytes(retrained, tmp_path), yes=False, source=f"adding {CANDIDATE}", echo=lambda _: None
        )
        report.steps.append(
            Step("add_shadow", f"add {CANDIDATE} as a shadow (config apply, version {added.version})", time.monotonic() - started)
        )

        mark = time.monotonic()
        shadow_partitions = TopicAdmin(bootstrap).existing_topics()[names.shadow_topic]
        counter = marker_counter(bootstrap, {(names.shadow_topic, p): 0 for p in range(shadow_partitions)}, retrained.id.encode())
        collect_timeout = args.shadow_events / args.rate * 4 + 120
        progress = wait_for(counter, args.shadow_events, timeout=collect_timeout, alive=alive, interval=0.1)
        report.steps.append(Step(COLLECT, f"collect {args.shadow_events:,} shadow scores", (progress.done_at or mark) - mark))

        mark = time.monotonic()
        config = live_config(publisher).config
        scores = read_shadow_scores(bootstrap, names, retrained.id, last=args.shadow_events, tenants=TENANTS)
        reference = reference_of(config.predictor(LIVE).spec.quantile_map, owner=f"live predictor {LIVE}")
        fitted, _, rates = refit_spec(retrained.spec, np.array([s.corrected_score for s in scores]), reference)
        if missed_rates(rates, DEFAULT_RATE_TOLERANCE):
            raise MuseError(f"the map fitted from {len(scores)} shadow scores misses its targets: {rates}")
        fitted.save(tmp_path / f"{CANDIDATE}-fit.json")
        report.fitted, report.fitted_id = f"{fitted.name}:{fitted.version}", fitted.id
        report.steps.append(Step("fit", f"fit from shadow ({len(scores):,} scores -> {report.fitted})", time.monotonic() - mark))

        mark = time.monotonic()
        current = live_config(publisher).config
        desired = promote(with_spec(current, CANDIDATE, fitted), CANDIDATE, routes_of_intent(current, INTENT))
        planned_live, plan = plan_against_live(publisher, desired)
        report.plan = render_plan(planned_live, plan)
        report.steps.append(Step("plan", "plan (expected alert rates from recent traffic)", time.monotonic() - mark))

        # Where the output topics end now: the promoted predictor's results come after.
        outputs = {names.output_topic(t): args.partitions for t in TENANTS}
        output_ends = {key: stop for key, (_, stop) in window_ranges(bootstrap, outputs, Window()).items()}
        mark = time.monotonic()
        plan.check(f"promoting {CANDIDATE}", yes=False)
        promoted = publisher.publish(desired, expect_version=planned_live.version)
        report.promoted_version = promoted.version
        report.steps.append(Step("promote", f"promote (publish version {promoted.version})", time.monotonic() - mark))

        mark = time.monotonic()
        report.worker_versions = wait_for_version(ports, promoted.version, timeout=120, alive=alive)
        report.steps.append(Step("live_in_every_worker", f"live in every worker ({WORKERS})", time.monotonic() - mark))
        echo(f"version {promoted.version} live in every worker after {report.update_seconds:.1f} s; scoring fresh traffic")

        fresh = marker_counter(bootstrap, output_ends, fitted.id.encode())
        wait_for(fresh, args.fresh_events, timeout=args.fresh_events / args.rate * 4 + 120, alive=alive, interval=0.1)
        produced = load.stop()
        load = None
        report.achieved_rate = produced.rate
        wait_for(committed_counter(bootstrap, names.worker_group, inputs), produced.sent, timeout=300, alive=alive)
        report.worker_versions = {w: config_version_served(port) or 0 for w, port in ports.items()}
        for worker in workers.values():
            worker.stop()
        outcomes = read_outcomes(bootstrap, names)
        by_version = live_predictors_by_version(bootstrap, names, promoted.version)
        report.verdict = verify(produced.produced, (outcome for outcome, _ in outcomes), by_version)
        report.fresh = fresh_judgements(outcomes, promoted.version, fitted.id, live)
        return report
    except Exception:
        for worker in workers.values():
            echo(worker.log_tail(20))
        raise
    finally:
        if load is not None:
            load.stop()
        for worker in workers.values():
            worker.stop()
        if not args.keep_topics:
            delete_namespace(TopicAdmin(bootstrap), names)


def handle(args: argparse.Namespace) -> int:
    bootstrap = command_bootstrap()
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        report = run_promotion(bootstrap, args, Path(tmp))
    print("the promotion's plan, as `muse config plan` shows it:")
    for line in report.plan:
        print(f"  {line}")
    for line in report.render():
        print(line)
    print(orjson.dumps(report.figures()).decode())
    return 0
