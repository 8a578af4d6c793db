"""The demo's own checks and closing line, on made-up counts that differ (a real run makes them equal)."""

from __future__ import annotations

import pytest

from muse_stream.demo import check_shadows, closing_line
from muse_stream.errors import MuseError


def shadow(event_id: str) -> tuple[str, dict]:
    return ("ns.internal.shadow", {"event_id": event_id})


def test_closing_line_reports_the_results_it_compared_not_the_events_twice() -> None:
    line = closing_line(
        {"events": 12, "results": 11, "shadow_results": 3, "shadowed_events": 5, "shadow_skipped": 2, "shadow_trips": 1}
    )
    assert line.startswith("12 events in, 11 results out")
    assert "3 shadow scores for 5 shadowed events (2 skipped" in line


def test_skipped_shadow_batches_explain_missing_shadow_results() -> None:
    check_shadows(4, [shadow("a"), shadow("b")], skipped=2)
    check_shadows(2, [shadow("a"), shadow("b")], skipped=0)


def test_unexplained_or_repeated_shadow_results_fail_the_demo() -> None:
    with pytest.raises(MuseError, match="4 events were shadowed but 2 shadow results arrived and the shadow guard skipped 1"):
        check_shadows(4, [shadow("a"), shadow("b")], skipped=1)
    with pytest.raises(MuseError, match="repeated for 1 events"):
        check_shadows(2, [shadow("a"), shadow("a")], skipped=0)
