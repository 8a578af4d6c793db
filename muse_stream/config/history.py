"""The config history: every version's change set, as the history topic keeps it (pure, no Kafka).

The config topic is compacted, so it only knows the present; the history topic keeps one record
per version, ``{"format": HISTORY_FORMAT, "config_version": N, "applied_at": ..., "applied_by":
"user@host", "changes": {key: body or null}}``, forever. Folding the change sets 1..N rebuilds the
whole config as of version N (``muse config show --version N``, ``muse config rollback N``), and
comparing each change set with the state before it says what it did (``muse config history``).
Records written before ``applied_by`` existed have none; they show ``-``.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from muse_stream.config.deployment import (
    ENTRY_TYPES,
    KINDS,
    ConfigError,
    DeploymentConfig,
    Entry,
    Problem,
)
from muse_stream.errors import MuseError

HISTORY_FORMAT = "muse.config-history/1"

Body = dict[str, Any]


class HistoryError(MuseError):
    """A history record that cannot be read, or a version the history cannot rebuild."""


@dataclass(frozen=True)
class HistoryEntry:
    """One version's change set: each key's new body, or None where the key was removed."""

    version: int
    applied_at: datetime | None
    applied_by: str | None
    changes: Mapping[str, Body | None]


def operator_identity() -> str:
    """``user@host`` of whoever runs this process: who a history record says applied a version."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = "-"
    return f"{user}@{socket.gethostname()}"


def encode_history_record(version: int, applied_at: datetime, applied_by: str, changes: Mapping[str, Body | None]) -> bytes:
    record = {
        "format": HISTORY_FORMAT,
        "config_version": version,
        "applied_at": applied_at.isoformat(),
        "applied_by": applied_by,
        "changes": dict(changes),
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def decode_history_record(key: bytes | None, value: bytes | None) -> HistoryEntry:
    """One history-topic record; raises :class:`HistoryError` saying what is wrong with it."""
    text = (key or b"").decode("ascii", errors="replace")
    if not text.isdigit():
        raise HistoryError(f"key {text!r} is not a version number")
    try:
        record = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError as error:
        raise HistoryError(f"version {text}: value is not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("format") != HISTORY_FORMAT:
        raise HistoryError(f"version {text}: value is not a {HISTORY_FORMAT} record")
    changes = record.get("changes")
    if (
        record.get("config_version") != int(text)
        or not isinstance(changes, dict)
        or not all(body is None or isinstance(body, dict) for body in changes.values())
    ):
        raise HistoryError(f"version {text}: config_version must equal the key and changes map keys to bodies or null")
    try:
        applied_at = datetime.fromisoformat(record["applied_at"]) if record.get("applied_at") else None
    except (TypeError, ValueError):
        raise HistoryError(f"version {text}: applied_at {record.get('applied_at')!r} is not an ISO time") from None
    by = record.get("applied_by")
    return HistoryEntry(int(text), applied_at, by if isinstance(by, str) else None, changes)


def in_order(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """By version; of two records for one version the later one counts (as on a compacted log)."""
    latest = {entry.version: entry for entry in entries}
    return [latest[v] for v in sorted(latest)]


def bodies_at(entries: Iterable[HistoryEntry], version: int) -> dict[str, Body]:
    """Key -> body of the whole config as of ``version``: the change sets 1..version folded."""
    by_version = {entry.version: entry for entry in in_order(entries)}
    newest = max(by_version, default=0)
    if not 1 <= version <= newest:
        raise HistoryError(
            f"there is no version {version}: the history holds versions 1 to {newest}"
            if newest
            else f"there is no version {version}: the history is empty"
        )
    missing = [v for v in range(1, version + 1) if v not in by_version]
    if missing:
        raise HistoryError(f"the history lacks version(s) {missing}, so version {version} cannot be rebuilt")
    bodies: dict[str, Body] = {}
    for v in range(1, version + 1):
        for key, body in by_version[v].changes.items():
            if body is None:
                bodies.pop(key, None)
            else:
                bodies[key] = body
    return bodies


def config_from_bodies(bodies: Mapping[str, Body], *, origin: str) -> DeploymentConfig:
    """The config that key -> body makes, checked like any other; ``origin`` names it in errors."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for key, body in sorted(bodies.items()):
        kind = key.partition("/")[0]
        if kind not in ENTRY_TYPES:
            problems.append(Problem(key, f"unknown key kind {kind!r}"))
            continue
        try:
            entries.append(ENTRY_TYPES[kind].model_validate(body))
        except ValidationError as error:
            problems.append(Problem(key, str(error.errors()[0]["msg"])))
    if problems:
        raise ConfigError(origin, problems)
    try:
        return DeploymentConfig.from_entries(entries)
    except ValidationError as error:
        raise ConfigError(origin, [Problem("(config)", str(e["msg"])) for e in error.errors()]) from None


def config_at(entries: Iterable[HistoryEntry], version: int) -> DeploymentConfig:
    return config_from_bodies(bodies_at(entries, version), origin=f"config version {version} rebuilt from the history")


def summarise(changes: Mapping[str, Body | None], before: Mapping[str, Body]) -> str:
    """``+2 routes, ~1 predictor, -1 tenant``: what a change set did to the state ``before`` it."""
    counts: dict[tuple[str, str], int] = {}
    for key, body in changes.items():
        sign = "-" if body is None else "~" if key in before else "+"
        if body is not None and before.get(key) == body:
            continue  # rewritten unchanged: not a change
        if body is None and key not in before:
            continue  # removed what was not there
        counts[sign, key.partition("/")[0]] = counts.get((sign, key.partition("/")[0]), 0) + 1
    kinds = [*KINDS, *sorted({kind for _, kind in counts} - set(KINDS))]
    parts = [
        f"{sign}{counts[sign, kind]} {kind}{'s' if counts[sign, kind] != 1 else ''}"
        for sign in "+~-"
        for kind in kinds
        if (sign, kind) in counts
    ]
    return ", ".join(parts) or "no changes (the version marker was restored)"


@dataclass(frozen=True)
class HistoryLine:
    version: int
    applied_at: datetime | None
    applied_by: str | None
    summary: str

    def render(self) -> str:
        when = self.applied_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if self.applied_at else "-"
        return f"{self.version:>7}  {when:<23}  {self.applied_by or '-':<24}  {self.summary}"


HISTORY_HEADER = f"{'version':>7}  {'applied at':<23}  {'applied by':<24}  changes"


def history_lines(entries: Iterable[HistoryEntry]) -> list[HistoryLine]:
    """One line per version, oldest first, each summarised against the config before it."""
    lines = []
    state: dict[str, Body] = {}
    for entry in in_order(entries):
        lines.append(HistoryLine(entry.version, entry.applied_at, entry.applied_by, summarise(entry.changes, state)))
        for key, body in entry.changes.items():
            if body is None:
                state.pop(key, None)
            else:
                state[key] = body
    return lines
