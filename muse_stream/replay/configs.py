"""Which configs a replay scores with: the live one, a version rebuilt from the history topic, or a
candidate file. Pure: the Kafka reads that feed these live in :mod:`muse_stream.replay.sources`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from muse_stream.config.deployment import (
    DeploymentConfig,
)
from muse_stream.errors import MuseError

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
        raise ReplayConfigError(
            f"configs {repeated} are asked for more than once (two files with the same stem?); "
            "give each config once, renaming a file if needed"
        )
    return choices
