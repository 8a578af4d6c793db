"""The latency benchmarks' pure parts (bench latency, bench noisy-neighbour): warm-up rounds count in
no figure."""

from __future__ import annotations

import argparse
import queue
from pathlib import Path

import pytest

from muse_stream.bench import latency, noisy_neighbour
from muse_stream.bench.latency import LoadResult
from muse_stream.bench.noisy_neighbour import Phase
from muse_stream.cli import main


def _row(app: str, offered: str, p99_ms: float) -> LoadResult:
    return LoadResult(
        app, 50, offered, 1000.0, 1000.0, 10_000, p99_ms / 2, p99_ms / 1.5, p99_ms, p99_ms * 2, 4.0, 20.0, 8.0, 30.0, 100.0, 10.0
    )


def test_warmup_rounds_count_in_no_figure_and_their_p99_is_shown_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cold broker's round, then three warm ones: the medians are the warm rounds' alone.
    p99s = iter([(150.0, 60.0), (40.0, 30.0), (35.0, 25.0), (45.0, 28.0)])

    def run_round(*args: object) -> list[LoadResult]:
        muse, floor = next(p99s)
        return [_row("muse", "1000/s", muse), _row("pass-through", "1000/s", floor)]

    monkeypatch.setattr(latency, "run_round", run_round)
    monkeypatch.setattr(latency, "command_bootstrap", lambda: "127.0.0.1:1")
    monkeypatch.setattr(latency, "bench_predictor", lambda *args, **kwargs: None)
    args = argparse.Namespace(skip_quix=True, trees=30, depth=4, repeat=3, warmup_rounds=1)
    muse, floor = latency.run_benchmark(args)
    assert (muse.p99_ms, muse.rounds_p99_ms, muse.warmup_p99_ms) == (40.0, [40.0, 35.0, 45.0], [150.0])
    assert (floor.p99_ms, floor.rounds_p99_ms, floor.warmup_p99_ms) == (28.0, [30.0, 25.0, 28.0], [60.0])
    assert muse.events == 30_000  # three rounds' events, not four


def test_no_warmup_round_leaves_the_rows_as_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(latency, "run_round", lambda *args: [_row("muse", "5000/s", 70.0)])
    monkeypatch.setattr(latency, "command_bootstrap", lambda: "127.0.0.1:1")
    monkeypatch.setattr(latency, "bench_predictor", lambda *args, **kwargs: None)
    (row,) = latency.run_benchmark(argparse.Namespace(skip_quix=True, trees=30, depth=4, repeat=1, warmup_rounds=0))
    assert (row.p99_ms, row.rounds_p99_ms, row.warmup_p99_ms) == (70.0, None, None)


def test_noisy_neighbour_warms_up_with_the_muse_workers_phases_and_reports_none_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[str] = []

    def worker_phases(
        bootstrap: str, args: object, predictor: object, tmp_path: Path, app: str, flood_rate: object
    ) -> list[Phase]:
        runs.append(app)
        rate = 2_000.0 * len(runs)  # what A wrote beside the worker in this run
        return [
            Phase(f"{app} run {len(runs)} phase {i}", _row(app, "1000/s", 40.0), None if i == 0 else rate, 1.0) for i in range(3)
        ]

    floods: list[object] = []

    def consumer_floor(bootstrap: str, args: object, quota: bool, flood_rate: object) -> Phase:
        floods.append(flood_rate)
        return Phase("floor", _row("plain consumer", "1000/s", 5.0), 1.0, None)

    monkeypatch.setattr(noisy_neighbour, "_worker_phases", worker_phases)
    monkeypatch.setattr(noisy_neighbour, "_consumer_floor", consumer_floor)
    monkeypatch.setattr(noisy_neighbour, "command_bootstrap", lambda: "127.0.0.1:1")
    monkeypatch.setattr(noisy_neighbour, "bench_predictor", lambda *args, **kwargs: None)
    args = argparse.Namespace(trees=30, depth=4, warmup_rounds=1, flood_rate=None, skip_passthrough=False)
    phases = noisy_neighbour.run_benchmark(args)
    assert runs == ["muse", "muse", "pass-through"]
    assert [p.name for p in phases[:6]] == [
        f"{app} run {run} phase {i}" for app, run in (("muse", 2), ("pass-through", 3)) for i in range(3)
    ]
    assert floods == [None, 4_000.0]  # the floor's flood is paced at the measured muse run's rate, not the warm-up's


@pytest.mark.parametrize(
    ("value", "message"), [("-1", "-1 is not allowed: give 0 or more"), ("one", "'one' is not a whole number")]
)
def test_a_bad_warmup_count_is_refused_with_the_option_named(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "latency", "--warmup-rounds", value])
    assert f"argument --warmup-rounds: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["latency", "noisy-neighbour"])
@pytest.mark.parametrize("value", ["-1", "0", "ten"])
def test_a_bad_measuring_time_is_refused_with_the_option_named(
    command: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `--seconds -1` started a worker and ended with "the paced producer exited with code 1"."""
    with pytest.raises(SystemExit):
        main(["bench", command, "--seconds", value])
    assert f"argument --seconds: {value!r} is not a duration" in capsys.readouterr().err


class _CountingProducer:
    """Stands in for confluent_kafka.Producer in the paced producer: counts what it is given."""

    produced = 0

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config

    def list_topics(self, topic: str, timeout: float) -> None:
        pass

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        type(self).produced += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def test_an_unthrottled_flood_goes_on_for_its_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unthrottled, the producer stopped after BURST_RATE x seconds events: on an idle machine the
    broker took them in under 2 s, before noisy-neighbour's B was measured. A flood (``sustain``)
    goes on until its seconds are up, with a bounded local queue."""
    monkeypatch.setattr(latency, "Producer", _CountingProducer)
    monkeypatch.setattr(latency, "POOL_EVENTS", 1_000)
    report: queue.Queue[tuple[int, float]] = queue.Queue()
    _CountingProducer.produced = 0
    latency._offer("127.0.0.1:1", "t", None, 1.0, "flood-", report, "flood", True)  # type: ignore[arg-type]
    sent, seconds = report.get_nowait()
    assert seconds >= 1.0 and sent == _CountingProducer.produced - 1  # all of its second; the 1: its warm-up record
    # A backlog of a known size (the latency bench's saturation) still stops at its count.
    _CountingProducer.produced = 0
    latency._offer("127.0.0.1:1", "t", None, 0.05, "burst-", report, "burst")  # type: ignore[arg-type]
    sent, _ = report.get_nowait()
    assert sent == int(latency.BURST_RATE * 0.05) + 1
