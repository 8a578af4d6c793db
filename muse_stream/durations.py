"""Durations as users write them (``20s``, ``10m``, ``14d``), for every option and config key that
takes one: the CLI's ``--since``/``--guard`` and the topics' retention. Pure."""

from __future__ import annotations

import re

UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")


def duration_ms(text: str, *, default_unit: str | None = "s") -> float | None:
    """``10m`` -> 600000.0; a bare number is in ``default_unit`` (refused when None). None when
    ``text`` is not a duration or is not above zero."""
    match = _DURATION.match(text.lower())
    if match is None or (match[2] is None and default_unit is None):
        return None
    ms = float(match[1]) * UNIT_MS[match[2] or default_unit or "s"]
    return ms if ms > 0 else None


def describe_ms(ms: int) -> str:
    """``604800000`` -> ``7d``: the largest unit that divides it."""
    for unit in ("d", "h", "m", "s"):
        if ms >= UNIT_MS[unit] and ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
