"""Model artifacts on the compacted models topic, keyed by sha256, cached in a local directory.

Why a topic: workers on any machine need only the bootstrap address to load every model the config
names; there is no shared filesystem, object store or registry service to provision, secure and
keep in sync. The topic is compacted and keyed by content hash, so it holds each artifact once,
forever, and re-uploading the same bytes changes nothing.

Reads go through a local content-addressed cache (a :class:`FileArtifactStore`): a miss replays the
topic into it. Every record is verified on read (its key must be the sha256 of its value) and a
record that fails is skipped with a warning naming topic and offset; the registry's loader checks
the hash again before parsing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from confluent_kafka import Producer

from muse_stream.cache_dir import cache_dir
from muse_stream.clients.producing import produce_acknowledged
from muse_stream.clients.reading import read_to_end
from muse_stream.clients.settings import artifact_producer_config
from muse_stream.errors import MuseError
from muse_stream.models.store import (
    ArtifactError,
    FileArtifactStore,
    check_sha256,
    sha256_hex,
)
from muse_stream.topics import ARTIFACT_MAX_BYTES, TopicNames

logger = logging.getLogger("muse_stream.config")
READ_TIMEOUT_S = 60.0


def default_cache_dir() -> Path:
    """Content-addressed, so one cache serves every namespace and broker safely."""
    return cache_dir() / "artifacts"


class KafkaArtifactStore:
    """An ``ArtifactStore`` (put/get/exists by sha256) over ``<ns>.internal.models``."""

    def __init__(self, bootstrap: str, names: TopicNames, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = names.models_topic
        self.cache = FileArtifactStore(cache_dir if cache_dir is not None else default_cache_dir())
        self._on_topic: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KafkaArtifactStore({self.topic} on {self.bootstrap}, cache {self.cache.root})"

    def location(self, sha256: str) -> str:
        return f"{self.topic} key {sha256} on {self.bootstrap}"

    def put(self, data: bytes) -> str:
        """Upload ``data`` (once) and wait until the broker has it; returns its sha256."""
        digest = sha256_hex(data)
        if len(data) > ARTIFACT_MAX_BYTES:
            raise ArtifactError(
                f"model artifact {digest} is {len(data)} bytes, over the {ARTIFACT_MAX_BYTES} bytes "
                f"the models topic {self.topic} accepts; shrink the model (fewer trees, UBJ format)"
            )
        with self._lock:
            if digest in self._on_topic:
                return digest  # re-uploading would be harmless (same key, same bytes), just wasteful
        produce_acknowledged(
            Producer(artifact_producer_config(self.bootstrap)),
            [(self.topic, digest.encode(), bytes(data))],
            timeout_s=READ_TIMEOUT_S,
            what=f"model artifact {digest} to {self.topic} on {self.bootstrap}",
            error=ArtifactError,
        )
        self.cache.put(data)
        with self._lock:
            self._on_topic.add(digest)
        return digest

    def get(self, sha256: str) -> bytes:
        check_sha256(sha256)
        if not self.cache.exists(sha256):
            self.refresh()
        if not self.cache.exists(sha256):
            raise ArtifactError(
                f"model artifact {sha256} is not on the models topic {self.topic} at {self.bootstrap}; "
                "upload it with `muse config apply` (which uploads every artifact a config names)"
            )
        return self.cache.get(sha256)

    def exists(self, sha256: str) -> bool:
        """On the topic (as last read); a cached copy alone does not count, the topic is the truth."""
        check_sha256(sha256)
        with self._lock:
            if sha256 in self._on_topic:
                return True
        self.refresh()
        with self._lock:
            return sha256 in self._on_topic

    def on_topic(self) -> frozenset[str]:
        """The sha256 of every artifact on the topic now (one replay)."""
        self.refresh()
        with self._lock:
            return frozenset(self._on_topic)

    def refresh(self) -> None:
        """Replay the models topic, caching every verified artifact not yet cached."""
        found: set[str] = set()
        try:
            for message in read_to_end(
                self.bootstrap, self.topic, timeout=READ_TIMEOUT_S, **{"fetch.max.bytes": ARTIFACT_MAX_BYTES}
            ):
                key = (message.key() or b"").decode("utf-8", errors="replace")
                value = message.value()
                if value is None:
                    found.discard(key)
                elif sha256_hex(value) != key:
                    logger.warning(
                        "models topic %s offset %d: key %r is not the sha256 of the value; record ignored",
                        self.topic,
                        message.offset(),
                        key,
                    )
                else:
                    found.add(key)
                    if not self.cache.exists(key):
                        self.cache.put(value)
        except ArtifactError:
            raise
        except MuseError as error:
            raise ArtifactError(f"{error} (models topic)") from error
        with self._lock:
            self._on_topic = found
