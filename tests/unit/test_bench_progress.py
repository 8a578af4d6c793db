"""The benchmarks' progress sampler: when a drain starts and ends, and what it says when it cannot time one."""

from __future__ import annotations

import math
import time

from muse_stream.bench.progress import wait_for


def test_a_drain_seen_whole_by_one_late_sample_has_no_rate_and_the_gap_that_hid_it() -> None:
    answers = iter([0, 0, 100])

    def count() -> int:
        done = next(answers)
        if done:
            time.sleep(0.3)  # the sample that finds everything done is the one that was slow
        return done

    progress = wait_for(count, 100, timeout=5, interval=0.01)
    assert math.isnan(progress.rate)
    assert progress.sampled_before_first is not None and progress.first_at is not None
    assert progress.first_at - progress.sampled_before_first >= 0.3


def test_a_drain_seen_in_steps_is_timed_from_the_first_completion_to_the_last() -> None:
    answers = iter([0, 10, 60, 100])
    progress = wait_for(lambda: next(answers), 100, timeout=5, interval=0.05)
    assert progress.first_count == 10 and progress.sampled_before_first is not None
    assert progress.first_at is not None and progress.first_at >= progress.sampled_before_first
    assert progress.seconds >= 0.1 and not math.isnan(progress.rate)  # two samples after the first: 0.1 s
