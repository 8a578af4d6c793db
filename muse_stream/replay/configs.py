"""Which configs a replay scores with: the live one, a version rebuilt from the history topic, or a
candidate file. Pure: the Kafka reads that feed these live in :mod:`muse_stream.replay.sources`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from muse_stream.config.deployment import (
    DeploymentConfig,
    Entry,
    RecordError,
    VersionMarker,
    decode_record,
    encode_value,
)
from muse_stream.errors import MuseError

# As muse_stream.config.publisher writes it (which imports a Kafka client; a unit test keeps the two equal).
HISTORY_FORMAT = "muse.config-history/1"
_TAG = re.compile(r"[^A-Za-z0-9_-]+")


class ReplayConfigError(MuseError):
    """A config a replay was asked for that cannot be had."""


@dataclass(frozen=True)
class ConfigChoice:
    """One config to replay with, as asked on the command line: ``live``, a version, or a file."""

    kind: str  # "live" | "version" | "file"
    version: int | None = None
    path: Path | None = None

    @property
    def tag(self) -> str:
        """The dataset's ``config`` value: ``live``, ``v<N>``, or the file's stem."""
        if self.kind == "live":
            return "live"
        if self.kind == "version":
            return f"v{self.version}"
        return _TAG.sub("_", self.path.stem) if self.path else "file"


@dataclass(frozen=True)
class ResolvedConfig:
    """A config ready to build a snapshot from; ``version`` is None for a candidate file (never published)."""

    tag: str
    version: int | None
    config: DeploymentConfig
    artifact_files: dict[str, Path] = field(default_factory=dict)


def check_tags(choices: Iterable[ConfigChoice]) -> list[ConfigChoice]:
    choices = list(choices)
    if not choices:
        raise ReplayConfigError("no config to replay with: give --config live, --config-version N or --config FILE.toml")
    tags = [c.tag for c in choices]
    repeated = sorted({t for t in tags if tags.count(t) > 1})
    if repeated:
        raise ReplayConfigError(f"configs {repeated} are asked for more than once (two files with the same stem?); "
                                "give each config once, renaming a file if needed")
    return choices


def config_from_history(values: Iterable[tuple[int, bytes | None]], version: int, *, topic: str) -> DeploymentConfig:
    """The config as version ``version`` left it, rebuilt from the history topic's change sets
    ``(offset, value)``: every change set up to and including it, applied in version order."""
    change_sets: dict[int, dict[str, object]] = {}
    for offset, value in values:
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue
        if (isinstance(record, dict) and record.get("format") == HISTORY_FORMAT
                and isinstance(record.get("config_version"), int) and isinstance(record.get("changes"), dict)):
            change_sets.setdefault(record["config_version"], record["changes"])
    if version not in change_sets:
        known = sorted(change_sets)
        have = f"it holds versions {known[0]}..{known[-1]}" if known else "it holds no version"
        raise ReplayConfigError(f"config version {version} is not in the history topic {topic} ({have}); "
                                "give a version it holds (`muse config show` prints the live one)")
    entries: dict[str, Entry] = {}
    for number in sorted(v for v in change_sets if v <= version):
        for key, body in change_sets[number].items():
            if body is None:
                entries.pop(key, None)
                continue
            try:  # the config topic's own decoder, so history and topic are read by the same rules
                _, entry = decode_record(key, encode_value(body, number))  # type: ignore[arg-type]
            except RecordError as error:
                raise ReplayConfigError(f"config version {number} on {topic}: key {key!r}: {error}") from None
            if entry is not None and not isinstance(entry, VersionMarker):
                entries[key] = entry
    try:
        return DeploymentConfig.from_entries(entries.values())
    except ValueError as error:
        raise ReplayConfigError(f"config version {version} rebuilt from {topic} is inconsistent: {error}") from None
