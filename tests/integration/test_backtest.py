"""`muse backtest` on a real replay: events spread over two days on the input topics, labels loaded
with `muse labels load`, replayed with the live config and an earlier version; the table, the JSON
summary and the self-contained HTML report agree with the dataset."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.replay.run import read_dataset
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b")
N = 400  # events per tenant, half on each of two days


def produce_over_two_days(bootstrap: str, topic: str, tenant: str, seed: int) -> tuple[list[str], np.ndarray, list[int]]:
    X, y = generate_events(N, seed=seed, fraud_rate=0.2)
    today = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    stamps = [today - (2 if i < N // 2 else 1) * 86_400_000 + 1000 * i for i in range(N)]
    producer = Producer({"bootstrap.servers": bootstrap})  # a plain client, as a tenant's would be
    ids = [f"{tenant}-e{i}" for i in range(N)]
    for event_id, features, stamp in zip(ids, events_as_dicts(X), stamps, strict=True):
        producer.produce(
            topic, key=event_id.encode(), value=orjson.dumps({"event_id": event_id, "features": features}), timestamp=stamp
        )
    assert producer.flush(30) == 0
    return ids, y, stamps


def test_backtest_of_a_real_replay(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ["--namespace", topic_names.namespace]
    store = tmp_path / "store"
    predictors = {
        "fraud-v1": small_predictor(store, version="1", seed=1),
        "fraud-v2": small_predictor(store, version="2", seed=2, max_depth=4),
    }
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, TENANTS, 2)
    for live in ("fraud-v1", "fraud-v2"):  # version 1, then version 2 moves both tenants to fraud-v2
        publish(
            kafka.bootstrap,
            topic_names,
            deployment(TENANTS, predictors, {(t, "card-fraud"): (live, ()) for t in TENANTS}),
            predictors,
            store,
        )
    ids, y, _ = produce_over_two_days(kafka.bootstrap, topic_names.input_topic("bank-a"), "bank-a", 5)
    produce_over_two_days(kafka.bootstrap, topic_names.input_topic("bank-b"), "bank-b", 6)
    labels = tmp_path / "labels.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": ids,
                "label": y.astype(int).tolist(),
                "labelled_at": pa.array([datetime.now(UTC)] * N, pa.timestamp("ms", tz="UTC")),
            }
        ),
        labels,
    )
    assert main(["labels", *ns, "load", str(labels), "--tenant", "bank-a"]) == 0
    out = tmp_path / "replay"
    assert main(["replay", *ns, "--all-tenants", "--config", "live", "--config-version", "1", "--out", str(out)]) == 0
    capsys.readouterr()

    started = time.perf_counter()
    assert main(["backtest", str(out), "--thresholds", "0.5,0.8"]) == 0
    printed = capsys.readouterr().out
    assert time.perf_counter() - started < 60
    days = sorted({(datetime.now(UTC) - timedelta(days=d)).date().isoformat() for d in (1, 2)})
    for tenant in TENANTS:
        for config in ("live", "v1"):
            assert re.search(rf"^{tenant}\s+{config}\s+{days[0]}\s+200\s+200\s", printed, re.M), printed
            assert re.search(rf"^{tenant}\s+{config}\s+all\s+400\s+400\s", printed, re.M), printed
    assert "P/R@0.5" in printed and "R@1% alerts" in printed

    summary = orjson.loads((out / "_backtest" / "summary.json").read_bytes())
    table = read_dataset(out).to_table()  # the backtest's output directory is not read as data
    live = table.filter(pc.and_(pc.equal(table["role"], "live"), pc.equal(table["config"], "live")))
    bank_a = live.filter(pc.equal(live["tenant"], "bank-a"))
    expected = pc.sum(pc.greater_equal(bank_a["score"], 0.5)).as_py() / bank_a.num_rows
    [total] = [g for g in summary["totals"] if g["tenant"] == "bank-a" and g["config"] == "live"]
    assert total["thresholds"][0]["alert_rate"] == pytest.approx(expected)
    assert total["labelled"] == N and total["positives"] == int(y.sum()) and 0.5 < total["auc"] <= 1.0
    assert [g["labelled"] for g in summary["totals"] if g["tenant"] == "bank-b"] == [0, 0]
    assert len(summary["periods"]) == len(TENANTS) * 2 * 2  # tenants x configs x days

    page = (out / "_backtest" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)  # self-contained: nothing fetched
    plots = re.findall(r"data-plot='alert-rate' data-tenant='([\w-]+)' data-config='(\w+)'", page)
    assert sorted(plots) == [(t, c) for t in TENANTS for c in ("live", "v1")]
    assert page.count("data-plot='recall'") == 1  # only bank-a has labels
    # A second backtest of the same directory still reads only the replay's files.
    assert main(["backtest", str(out)]) == 0

    # Walk-forward on the same replay: 200 events a day are too few to fit a mapping on; one line says so.
    capsys.readouterr()
    assert main(["backtest", str(out), "--walk-forward", "--old", "v1", "--new", "live"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"muse: error: tenant bank-a: cannot fit a mapping on its windows (200 events on {days[0]}, the fit window): "
    )
    assert err.endswith("walk forward with a longer --period\n")
    assert main(["backtest", str(out), "--walk-forward", "--old", "v7", "--new", "live"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config(s) v7 are not in the replay (it has live, v1)" in err
