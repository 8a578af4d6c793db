"""Replaying the config topic: the state its records build, and a one-shot read of what is live
(and of the history topic, every version's change set).

:class:`ConfigState` is shared by the watcher (streaming) and the publisher / CLI (read to the end
once), so both read the topic by the same rules: a record that cannot be decoded is rejected and
changes nothing; a marker ends a change set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

from muse_stream.clients.reading import READ_TIMEOUT_S, read_to_end
from muse_stream.config.deployment import (
    MARKER_KEY,
    DeploymentConfig,
    Entry,
    RecordError,
    VersionMarker,
    canonical_body,
    decode_record,
)
from muse_stream.config.history import HistoryEntry, HistoryError, decode_history_record
from muse_stream.topics import TopicNames

logger = logging.getLogger("muse_stream.config")


class Rejection(NamedTuple):
    offset: int
    key: str
    reason: str


@dataclass
class ConfigState:
    """Key -> entry as the records so far leave it, plus the last marker seen."""

    topic: str
    entries: dict[str, Entry] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # every key whose latest record is not a tombstone
    marker: VersionMarker | None = None
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.marker.config_version if self.marker else 0

    def reject(self, offset: int, key: str, reason: str) -> None:
        logger.warning("config topic %s partition 0 offset %d key %r rejected: %s", self.topic, offset, key, reason)
        self.rejected.append(Rejection(offset, key, reason))

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> VersionMarker | None:
        """Apply one record; return the marker when the record ends a change set (its version increases)."""
        text = key.decode("utf-8", errors="replace") if key is not None else "<no key>"
        if key is not None and text != MARKER_KEY:
            (self.present.add if value is not None else self.present.discard)(text)
        try:
            text, entry = decode_record(key, value)
        except RecordError as error:
            self.entries.pop(text, None)  # the key's latest record is unusable: its old value is gone too
            self.reject(offset, text, str(error))
            return None
        if isinstance(entry, VersionMarker):
            if entry.config_version <= self.version:
                self.reject(offset, text, f"config version {entry.config_version} does not increase past {self.version}")
                return None
            self.marker = entry
            return entry
        if entry is None:
            self.entries.pop(text, None)
        else:
            self.entries[text] = entry
        return None

    def deployment(self) -> DeploymentConfig:
        """The config the entries make; raises pydantic's ValidationError when they are inconsistent."""
        return DeploymentConfig.from_entries(self.entries.values())

    def bodies(self) -> dict[str, bytes]:
        return {key: canonical_body(entry) for key, entry in self.entries.items()}


def read_config_log(bootstrap: str, names: TopicNames, *, timeout: float = READ_TIMEOUT_S) -> ConfigState:
    """Everything committed on the config topic now, replayed; the topic must exist."""
    state = ConfigState(names.config_topic)
    for message in read_to_end(bootstrap, names.config_topic, timeout=timeout):
        state.apply(message.key(), message.value(), message.offset())
    return state


def read_history(bootstrap: str, names: TopicNames, *, timeout: float = READ_TIMEOUT_S) -> list[HistoryEntry]:
    """Every change set committed on the history topic now (the topic must exist); a record that
    cannot be read is reported and skipped, so one bad record never hides the others."""
    entries = []
    for message in read_to_end(bootstrap, names.config_history_topic, timeout=timeout):
        try:
            entries.append(decode_history_record(message.key(), message.value()))
        except HistoryError as error:
            logger.warning(
                "history topic %s partition 0 offset %d skipped: %s", names.config_history_topic, message.offset(), error
            )
    return entries
