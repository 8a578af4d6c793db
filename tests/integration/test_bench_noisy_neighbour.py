"""`muse bench noisy-neighbour` end to end on the real broker, short: three phases with real figures
for the muse worker and three for the pass-through worker, the two floor phases (no worker), the
flooding tenant's quota throttling it, one JSON line, and no topics or quota left behind."""

from __future__ import annotations

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.security import _config_command

pytestmark = pytest.mark.kafka
QUOTA = 250_000  # bytes/s: about 340 of the bench's events per second


def test_bench_noisy_neighbour_prints_b_alone_and_under_a_flood_with_and_without_a_quota(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    args = ["--seconds", "3", "--rate", "500", "--trees", "30", "--depth", "4", "--quota-bytes", str(QUOTA)]
    # A paced flood (an unthrottled one writes GBs to the test broker), and no warm-up round (it runs
    # the same phases as the first measured run: tests/unit/test_latency_bench.py checks it counts in nothing).
    args += ["--flood-rate", "20000", "--warmup-rounds", "0"]
    assert main(["bench", "noisy-neighbour", *args]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    assert figures["bench"] == "noisy-neighbour" and figures["fair_share"] is True
    assert figures["quota"] == {"kind": "client-id producer_byte_rate", "bytes_per_s": QUOTA}
    alone, quota, flood, pass_alone, pass_quota, pass_flood, floor_quota, floor = figures["phases"]
    assert [p["name"] for p in figures["phases"]] == [
        "B alone",
        f"B under A's flood, A quota {QUOTA:,} B/s",
        "B under A's flood, no quota",
        "pass-through worker: B alone",
        f"pass-through worker: B under A's flood, A quota {QUOTA:,} B/s",
        "pass-through worker: B under A's flood, no quota",
        f"floor: plain consumer, A's flood, A quota {QUOTA:,} B/s",
        "floor: plain consumer, A's flood, no quota",
    ]
    assert [p["steady"]["app"] for p in figures["phases"]] == ["muse"] * 3 + ["pass-through"] * 3 + ["plain consumer"] * 2
    for phase in figures["phases"]:
        steady = phase["steady"]
        assert steady["events"] > 400  # all of them came back (measure_load waits for every one)
        assert 0 < steady["p50_ms"] <= steady["p99_ms"] <= steady["max_ms"]
    assert alone["flood_written_per_s"] is None
    # A floods at the rate given, for all of B's window, and the worker scores it; the quota holds
    # A's writes far below its flood (in a short window a throttled A may get nothing through at all,
    # so its scored rate there is not asserted).
    assert flood["flood_written_per_s"] > 10_000 and flood["flood_scored_per_s"] > 0
    assert figures["flood_rate"] == 20_000 and figures["warmup_rounds"] == 0
    assert quota["flood_written_per_s"] < min(2 * QUOTA / 700, flood["flood_written_per_s"])
    # The pass-through worker: the same loop and transactions commit A's flood, and the quota holds A.
    assert pass_alone["flood_written_per_s"] is None and pass_flood["flood_scored_per_s"] > 0
    assert pass_quota["flood_written_per_s"] < min(2 * QUOTA / 700, pass_flood["flood_written_per_s"])
    # The floor: the same floods with no worker, B's events read by a consumer that does nothing else.
    # Its quota is set and cleared the same way (the last assertion below).
    assert floor["flood_written_per_s"] > 0 and floor["flood_scored_per_s"] is None
    assert floor_quota["flood_written_per_s"] < min(2 * QUOTA / 700, floor["flood_written_per_s"])
    assert floor["steady"]["app"] == "plain consumer" and floor["steady"]["transactions_per_s"] is None
    assert len(figures["goals"]) == 4 and "B p99 < 100 ms (A's flood, no quota)" in figures["goals"]
    assert "p99/alone" in out and "A scored/s" in out
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # the namespace is deleted
    assert "producer_byte_rate" not in _config_command(kafka.bootstrap, "--describe", "--entity-type", "clients", login=False)
