"""The README's "For analysts" blocks, run as written, in order, on a fresh throwaway broker: the demo
keeps its labelled topics, its replay and backtest print what the README shows and write a
self-contained report; the replay options block runs on those topics; the retention block sets what
its comments say; and the backtest section's run, on five days of a tenant's history, prints the
tables the README shows.

Substitutions, each for something the README leaves to the user: the `kafka` fixture's broker stands
for `muse broker start` (MUSE_BOOTSTRAP); the namespace the demo printed replaces the README's example
`demo-1a2b3c4d`, and is MUSE_NAMESPACE for the block that names none; that block's example window
(March 2026) becomes the days the demo's events were written; its outcomes.parquet and candidate.toml
are files a user would bring (labels for some of bank-a's events, and a copy of
topologies/example.toml); the backtest section's run gets a fresh namespace for `analyst`."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.replay.run import read_dataset
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.readme import (
    ROOT,
    muse_environment,
    readme_block,
    readme_commands,
    readme_output,
    run_muse,
    split_comment,
)

pytestmark = pytest.mark.kafka
SECTION = "## For analysts (replay, backtest, walk-forward, retention)"
EXAMPLE_NAMESPACE = "demo-1a2b3c4d"
# An asset a page would fetch: <script src>, <link href> or <img src> naming a URL, not inlined.
FETCHED_ASSET = re.compile(r"""<(script|link|img)\b[^>]*\b(src|href)\s*=\s*['"]?(https?:)?//""", re.I)


@dataclass(frozen=True)
class DemoRun:
    cwd: Path  # where the block's commands ran, and their --out directories are
    namespace: str
    events: int  # what the demo sent, all tenants and phases
    outputs: dict[str, str]  # command as run -> stdout


@pytest.fixture(scope="module")
def demo_run(kafka: BrokerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The first block: `muse demo --keep-topics`, then the replay and backtest it prints, from a
    folder of their own. Its topics are deleted afterwards."""
    commands = readme_commands(SECTION)
    assert commands[0] == "muse broker start"  # the kafka fixture
    cwd = tmp_path_factory.mktemp("analyst")
    env = muse_environment(kafka.bootstrap)
    assert commands[1] == "muse demo --keep-topics"
    demo = run_muse(commands[1], env, cwd, timeout=600)
    found = re.search(r"muse replay --namespace (demo-\w+) ", demo)
    assert found, demo
    namespace = found.group(1)
    try:
        outputs = {commands[1]: demo}
        for command in commands[2:]:
            command = command.replace(EXAMPLE_NAMESPACE, namespace)
            assert f"\n  {command}\n" in demo + "\n", f"the demo does not end with {command!r}"  # "and these two commands"
            outputs[command] = run_muse(command, env, cwd)
        events = int(re.search(r"^(\d+) events in, ", demo, re.M).group(1))  # type: ignore[union-attr]
        yield DemoRun(cwd, namespace, events, outputs)
    finally:
        delete_namespace(TopicAdmin(kafka.bootstrap), TopicNames(namespace))


def test_the_demo_block_replays_and_backtests_the_demos_labelled_events(demo_run: DemoRun) -> None:
    replay = demo_run.outputs[f"muse replay --namespace {demo_run.namespace} --all-tenants --config live --out demo-replay"]
    assert f"replayed {demo_run.events:,} events" in replay, replay
    for tenant in ("bank-a", "bank-b", "bank-c"):  # the demo's labels, joined ("labels included")
        assert re.search(rf"^  {tenant}: [\d,]+ events, [1-9][\d,]* labelled$", replay, re.M), replay

    printed = demo_run.outputs["muse backtest demo-replay"].splitlines()
    # The table the README shows (its run had --thresholds 0.5,0.8; the demo block's takes the edges).
    shown = readme_output("### Backtest: alert rates and label metrics")
    title, header = shown[0], shown[1].split()
    assert printed[0] == title and printed[1].split() == header, printed[:2]
    rows = [line.split() for line in printed[3:] if line.startswith("bank-")]
    assert {row[0] for row in rows} == {"bank-a", "bank-b", "bank-c"} and {row[1] for row in rows} == {"live"}
    labels_title = next(line for line in shown if line.startswith("with labels"))
    assert labels_title in printed, printed
    labels_header = printed[printed.index(labels_title) + 1].split()
    assert labels_header[:7] == ["tenant", "config", "day", "labelled", "positives", "AUC", "P/R@0.2"], labels_header
    assert printed[-1] == "wrote demo-replay/_backtest/summary.json and demo-replay/_backtest/report.html"

    written = demo_run.cwd / "demo-replay" / "_backtest"
    summary = orjson.loads((written / "summary.json").read_bytes())
    totals = {total["tenant"]: total for total in summary["totals"]}
    assert sorted(totals) == ["bank-a", "bank-b", "bank-c"] and sum(t["events"] for t in totals.values()) == demo_run.events
    assert all(t["labelled"] > 0 and 0.5 < t["auc"] <= 1.0 for t in totals.values()), totals
    page = (written / "report.html").read_text()
    assert not FETCHED_ASSET.search(page), FETCHED_ASSET.search(page)
    assert page.count("src='data:image/png;base64,") >= 3  # the plots, inlined


def test_the_replay_options_block_runs_on_the_demos_topics(kafka: BrokerHandle, demo_run: DemoRun) -> None:
    cwd = demo_run.cwd
    # What a user brings: outcomes for some of bank-a's events, and a candidate deployment file.
    demo_rows = read_dataset(cwd / "demo-replay").to_table(filter=pc.field("tenant") == "bank-a")
    ids = demo_rows["event_id"].to_pylist()[:100]
    outcomes = {event_id: int(i % 10 == 0) for i, event_id in enumerate(ids)}
    labelled_at = pa.array([datetime.now(UTC)] * len(ids), pa.timestamp("ms", tz="UTC"))
    pq.write_table(
        pa.table({"event_id": ids, "label": list(outcomes.values()), "labelled_at": labelled_at}), cwd / "outcomes.parquet"
    )
    shutil.copy(ROOT / "topologies" / "example.toml", cwd / "candidate.toml")
    shutil.copytree(ROOT / "topologies" / "example", cwd / "example", dirs_exist_ok=True)
    days = sorted(date.fromisoformat(day) for day in set(demo_rows["day"].to_pylist()))
    window = f"--from {days[0]} --to {days[-1] + timedelta(days=1)}"

    env = muse_environment(kafka.bootstrap, demo_run.namespace)
    commands = readme_commands(SECTION, 1)
    assert "--from 2026-03-01 --to 2026-03-08" in commands[1]
    outputs = {command: run_muse(command.replace("--from 2026-03-01 --to 2026-03-08", window), env, cwd) for command in commands}

    loaded = outputs["muse labels load outcomes.parquet --tenant bank-a"]
    assert loaded.startswith(
        f"published 100 labels (10 fraud, 90 genuine) from outcomes.parquet to {demo_run.namespace}.tenant.bank-a.labels"
    )
    # Three configs over one tenant's window: live, version 3 from the history, the candidate file.
    march = read_dataset(cwd / "replay-march").to_table(filter=pc.field("role") == "live")
    assert set(march["tenant"].to_pylist()) == {"bank-a"}
    assert sorted(set(march["config"].to_pylist())) == ["candidate", "live", "v3"]
    assert (
        march.num_rows == 3 * len(set(march["event_id"].to_pylist())) == 3 * demo_rows.filter(pc.field("role") == "live").num_rows
    )
    joined = {row["event_id"]: row["label"] for row in march.to_pylist() if row["event_id"] in outcomes}
    assert joined == outcomes  # the loaded labels, the latest for each event
    candidate = march.filter(pc.field("config") == "candidate")
    assert set(candidate["predictor_name"].to_pylist()) == {"fraud-v1"}  # the file's route, never published
    # The offsets' head: every tenant, every event the demo sent.
    head = outputs["muse replay --all-tenants --config live --from-offset 0 --to-offset 100000 --out replay-head/"]
    assert f"replayed {demo_run.events:,} events (offsets 0 to 100000)" in head, head
    # Shard 2 of 4 takes the second of the demo's three input partitions, and its files say so.
    shard = outputs["muse replay --all-tenants --config live --shard 2/4 --out shared/"]
    assert "shard 2/4: 1 partition(s)" in shard, shard
    assert {path.name.startswith("part-2-of-4") for path in (cwd / "shared").rglob("*.parquet")} == {True}


def test_the_retention_block_sets_what_its_comments_say(kafka: BrokerHandle, topic_names: TopicNames) -> None:
    env = muse_environment(kafka.bootstrap, topic_names.namespace)
    (add, _), (alter, says) = (split_comment(line) for line in readme_block("### Retention: how far back a replay can go"))
    run_muse(add, env)
    listed = run_muse("muse tenants list", env)  # the listing the section's text shows, e.g.
    [shown] = re.findall(r"`(bank-a  partitions=2 [^`]*)`", (ROOT / "README.md").read_text())
    [row] = [line.split("\t") for line in listed.splitlines() if line.startswith("bank-a\t")]
    as_shown = re.sub(r"replication=\d+", "replication=1", " ".join(row[:-1]))  # 1 node, or a cluster of 3
    assert f"{as_shown} prefix=..." == " ".join(shown.split()), (row, shown)
    assert row[-1] == f"prefix={topic_names.tenant_prefix('bank-a')}"
    altered = run_muse(alter, env).splitlines()
    # "was 14d  <ns>.tenant.bank-a.input  retention=30d (and .labels)"
    promised, _, also = says.replace("<ns>", topic_names.namespace).partition(" (and ")
    assert [line.split() for line in altered] == [
        promised.split(),
        promised.replace(".input", also.rstrip(")")).split(),
    ], altered


def test_the_backtest_run_block_on_five_days_of_a_tenants_history(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path
) -> None:
    """The backtest section's run, on bank-a alone (the block's comment adds bank-b and shop-c) and
    2,000 events a day instead of 8,000: its set-up done as the README says elsewhere (configs with
    `muse config apply` and `muse promote`, events from a tenant's plain client with their own
    timestamps, outcomes for the first four days in a Parquet file), in a fresh namespace."""
    heading = "### Backtest: alert rates and label metrics"
    env = muse_environment(kafka.bootstrap, topic_names.namespace)
    commands = [
        split_comment(line)[0].replace("--namespace analyst", f"--namespace {topic_names.namespace}")
        for line in readme_block(heading)
    ]
    add, load, replay, backtest, walk_forward = commands
    assert add.startswith("muse tenants add bank-a ") and load.startswith("muse labels load bank-a-outcomes.parquet ")
    run_muse(add, env, tmp_path)
    # The README's days are fixed: once they are older than the default 7 days' retention, Kafka could
    # delete them mid-test, so this tenant keeps what it is sent (what a tenant with that much history does).
    run_muse("muse tenants alter bank-a --retention forever", env)
    # "the old model as config version 1 and the new one as version 2 (live)"
    run_muse("muse config apply topologies/example.toml", env)
    run_muse("muse promote bank-a/card-fraud --to fraud-v2", env)
    days = [date(2026, 11, 26) + timedelta(days=d) for d in range(5)]
    assert f"--from {days[0]} --to {days[-1] + timedelta(days=1)} " in replay
    per_day = 2_000
    X, y = generate_events(per_day * len(days), seed=7)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 20})  # a tenant's own client
    for i, features in enumerate(events_as_dicts(X)):
        noon = datetime.combine(days[i // per_day], datetime.min.time(), UTC) + timedelta(hours=12, seconds=i % per_day)
        producer.produce(
            topic_names.input_topic("bank-a"),
            key=f"e{i}".encode(),
            value=orjson.dumps({"event_id": f"e{i}", "features": features}),
            timestamp=int(noon.timestamp() * 1000),
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    known = per_day * 4  # "outcomes known for the first four days"
    pq.write_table(
        pa.table(
            {
                "event_id": [f"e{i}" for i in range(known)],
                "label": y[:known].astype(int).tolist(),
                "labelled_at": pa.array([datetime.now(UTC)] * known, pa.timestamp("ms", tz="UTC")),
            }
        ),
        tmp_path / "bank-a-outcomes.parquet",
    )
    outputs = {command: run_muse(command, env, tmp_path) for command in (load, replay, backtest, walk_forward)}

    assert f"replayed {per_day * len(days):,} events" in outputs[replay], outputs[replay]
    shown = readme_output(heading)
    printed = outputs[backtest].splitlines()
    assert printed[0] == shown[0] and printed[1].split() == shown[1].split(), printed[:2]
    for config in ("live", "v1"):
        for day in days:
            assert re.search(rf"^bank-a\s+{config}\s+{day}\s+2,000\s+2,000\s", outputs[backtest], re.M), outputs[backtest]
    labels_title = next(line for line in shown if line.startswith("with labels"))
    labels_header = printed[printed.index(labels_title) + 1]
    assert labels_header.split() == shown[shown.index(labels_title) + 1].split(), labels_header
    assert re.search(rf"^bank-a\s+live\s+all\s+{known:,}\s", outputs[backtest], re.M), outputs[backtest]

    shown = readme_output("### Walk-forward over real history")
    title = re.sub(r"bank-b|8,000|32,000|24,000", "X", shown[0])
    printed = outputs[walk_forward].splitlines()
    assert re.sub(r"bank-a|2,000|8,000|6,000", "X", printed[1]) == title, printed[:3]
    assert printed[2].split() == shown[1].split(), printed[2]
    predictors = [line.split()[0] for line in printed[3:] if line.strip() and not line.startswith("p1:")]
    assert [p for p in predictors if p in {row.split()[0] for row in shown[2:]}] == [row.split()[0] for row in shown[2:]]
    assert (tmp_path / "replay-week" / "_backtest" / "walk_forward.json").exists()
