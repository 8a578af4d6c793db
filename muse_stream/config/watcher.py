"""Follow the config topic in a background thread and keep an immutable snapshot in force.

The watcher assigns the config topic's one partition from the beginning (no consumer group, so
every worker sees the whole config; read_committed, so aborted publications never show). Records
go into a pending :class:`ConfigState`; at each ``meta/version`` marker the state is checked, and
the newest checked state is turned into a :class:`ConfigSnapshot` (every model loaded, every
predictor warmed) before one reference swap makes it current. Readers of :attr:`current` thus see
version N or N+1 whole, never half a change set.

Anything invalid (an undecodable record, a marker whose version does not increase, a change set
whose result is inconsistent or whose models cannot be loaded) is logged with topic, partition and
offset, added to :attr:`rejected`, and ignored: the last good snapshot stays in force.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaError
from pydantic import ValidationError

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import good, reader_from_start
from muse_stream.config.artifact_topic import KafkaArtifactStore
from muse_stream.config.deployment import MARKER_KEY, DeploymentConfig
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.config.state import ConfigState, Rejection
from muse_stream.errors import MuseError
from muse_stream.models import ArtifactStore
from muse_stream.topics import TopicNames

logger = logging.getLogger("muse_stream.config")
POLL_S = 0.05
BUILD_RETRY_S = 5.0


class ConfigWatcher:
    def __init__(self, bootstrap: str, names: TopicNames, *, artifact_store: ArtifactStore | None = None) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.topic = names.config_topic
        self.artifact_store = artifact_store if artifact_store is not None else KafkaArtifactStore(bootstrap, names)
        self._state = ConfigState(self.topic)
        self._current = ConfigSnapshot.empty()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._retry_at = 0.0
        self._failed_offset: int | None = None
        self._pending: tuple[int, int, DeploymentConfig] | None = None  # (offset, version, checked config)

    # -- API ------------------------------------------------------------------------------------

    @property
    def current(self) -> ConfigSnapshot:
        return self._current

    def live_snapshot(self) -> ConfigSnapshot:
        """The current snapshot, or an error once nothing keeps it current any more.

        A worker calls this per batch: scoring on with a config it can no longer update would
        silently ignore every later promotion or rollback, so it stops instead and is restarted.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            raise MuseError(
                f"the config watcher of topic {self.topic} on {self.bootstrap} is not running"
                + (f" (it died: {self._failure})" if self._failure else "")
                + "; restart the worker"
            )
        return self._current

    @property
    def rejected(self) -> list[Rejection]:
        return list(self._state.rejected)

    def start(self) -> ConfigWatcher:
        if self._thread is not None:
            raise MuseError(f"config watcher of {self.topic} is already started")
        TopicAdmin(self.bootstrap).ensure(self.names.worker_internal_topic_specs())
        consumer = reader_from_start(self.bootstrap, self.topic, **{"enable.partition.eof": True})
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name=f"config-watcher-{self.names.namespace}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_for_version(self, version: int, timeout: float) -> ConfigSnapshot:
        """The current snapshot once its version is at least ``version``; MuseError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._current.version < version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = self._state.rejected[-1] if self._state.rejected else None
                    raise MuseError(
                        f"config version {version} did not become current from topic {self.topic} on {self.bootstrap} "
                        f"within {timeout:.1f} s (current version {self._current.version}"
                        + (f"; last rejected: offset {last.offset} key {last.key!r}: {last.reason}" if last else "")
                        + "); check `muse config show` and the watcher's log"
                    )
                self._changed.wait(remaining)
            return self._current

    def __enter__(self) -> ConfigWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self, consumer: Consumer) -> None:
        caught_up = False  # no snapshot before the whole log as of start is read: never a stale start
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                if message is None:
                    if caught_up:
                        self._build_pending()  # idle: make the newest checked change set current
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        caught_up = True
                        self._build_pending()
                    elif error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise MuseError(f"cannot follow config topic {self.topic} on {self.bootstrap}: {error.str()}")
                    else:
                        logger.warning("config topic %s: %s", self.topic, error.str())
                    continue
                self._on_record(message.key(), message.value(), good(message).offset())
        except Exception as error:  # noqa: BLE001 - a dying watcher must say why
            self._failure = repr(error)
            logger.exception("config watcher of %s stopped on an unexpected error", self.topic)
            raise
        finally:
            consumer.close()

    def _on_record(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        marker = self._state.apply(key, value, offset)
        if marker is None:
            return
        try:
            config = self._state.deployment()  # a copy: later records cannot change it
        except ValidationError as error:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
            self._state.reject(offset, MARKER_KEY, f"config version {marker.config_version} is inconsistent: {reasons}")
            return
        self._pending = (offset, marker.config_version, config)
        self._retry_at = 0.0  # a newer change set is tried at once, whatever failed before

    def _build_pending(self) -> None:
        """Load and swap in the newest checked change set; a failed load is retried with backoff
        (an artifact read can time out) while the last good snapshot stays in force."""
        if self._pending is None or time.monotonic() < self._retry_at:
            return
        offset, version, config = self._pending
        try:
            snapshot = ConfigSnapshot.build(version, config, self.artifact_store)
        except Exception as error:  # noqa: BLE001 - any failure to load keeps the last good snapshot
            if self._failed_offset != offset:
                self._state.reject(offset, MARKER_KEY, f"config version {version} cannot be loaded: {error}")
                self._failed_offset = offset
            self._retry_at = time.monotonic() + BUILD_RETRY_S
            logger.warning("config version %d cannot be loaded yet; retrying in %.0f s", version, BUILD_RETRY_S)
            return
        self._pending = None
        with self._changed:
            self._current = snapshot
            self._changed.notify_all()
        logger.info("config topic %s offset %d: version %d is current", self.topic, offset, version)
