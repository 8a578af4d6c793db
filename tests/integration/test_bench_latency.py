"""`muse bench latency` end to end on the real broker, short: the muse rows and the pass-through
worker's floor rows, with every event timed, one JSON line, and no topics left behind."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from muse_stream.bench.latency import latency_reader, measure_load, stamp_on_append
from muse_stream.bench.throughput import TENANT, deploy_single_tenant
from muse_stream.bench.workload import bench_names
from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.errors import MuseError

pytestmark = pytest.mark.kafka


def test_bench_latency_times_muse_and_the_pass_through_floor_at_the_same_loads(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    args = ["--rates", "300", "--commit-intervals", "50", "--seconds", "2", "--trees", "30", "--depth", "4", "--skip-quix"]
    assert main(["bench", "latency", *args]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    rows = {(r["app"], r["offered"]): r for r in figures["results"]}
    assert set(rows) == {("muse", "300/s"), ("muse", "saturation"), ("pass-through", "300/s")}
    for row in rows.values():
        # measure_load waits for every event's result: each one was timed, in order of magnitude sense
        assert row["events"] >= 500
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] < 60_000
    floor, muse = rows[("pass-through", "300/s")], rows[("muse", "300/s")]
    # The pass-through results carry no timings (no scoring leg), the muse ones do.
    assert floor["to_scoring_p50_ms"] is None and muse["to_scoring_p50_ms"] is not None
    assert "pass-through" in out
    # The default warm-up round ran first and counts in no figure: its p99 is apart, per row.
    assert figures["warmup_rounds"] == 1 and "warm-up p99" in out
    assert all(len(row["warmup_p99_ms"]) == 1 and row["warmup_p99_ms"][0] > 0 for row in rows.values())
    assert rows[("muse", "300/s")]["events"] <= 601  # one round's 2 s at 300/s, not the warm-up's too
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # every namespace is deleted


def test_output_index_interval_bytes_is_set_on_the_output_topics_alone(kafka: BrokerHandle, tmp_path: Path) -> None:
    """`--output-index-interval-bytes` (bench latency and bench tenants): what it costs a tailing
    consumer is measured only if the bench's output topics really carry it, and the others do not."""
    names = bench_names("benchix")
    admin = TopicAdmin(kafka.bootstrap)
    try:
        deploy_single_tenant(kafka.bootstrap, names, 2, None, tmp_path, {"index.interval.bytes": "262144"})
        topics = [spec.name for spec in names.tenant_topic_specs(TENANT, 2)]
        configs = admin.topic_configs(topics)
        output = names.output_topic(TENANT)
        assert configs[output]["index.interval.bytes"] == "262144"
        assert {configs[t]["index.interval.bytes"] for t in topics if t != output} == {"4096"}
        assert admin.existing_topics()[output] == 2
    finally:
        delete_namespace(admin, names)


def test_a_load_whose_app_died_fails_at_once_with_a_line_naming_it(kafka: BrokerHandle) -> None:
    """Not the whole deadline (the load's seconds plus two minutes) and a traceback: one line, in seconds."""
    names = bench_names("benchdead")
    admin = TopicAdmin(kafka.bootstrap)
    try:
        stamp_on_append(kafka.bootstrap, names, 1)
        reader = latency_reader(kafka.bootstrap, names, 1)
        started = time.monotonic()
        try:
            with pytest.raises(MuseError, match=r"^muse 1000/s: the muse process exited after 0 results \(its log is above\)$"):
                measure_load(kafka.bootstrap, names, reader, 1000.0, 5.0, 50, "1000/s", consumer_alive=lambda: False)
        finally:
            reader.close()
        assert time.monotonic() - started < 5
    finally:
        delete_namespace(admin, names)
