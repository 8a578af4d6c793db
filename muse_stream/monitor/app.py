"""The monitor's Faust app: every tenant's output topic -> per-tenant tumbling-window stats -> JSON views.

At-least-once (Faust's default processing guarantee): a crash may replay a few records into the
table, which inflates a monitoring count briefly; the source of truth stays the output topics.

Three Faust gaps are worked around here, each in one small place:

* Faust sets ``isolation_level="read_committed"`` only under ``exactly_once`` and has no setting
  for it (``AIOKafkaConsumerThread._create_worker_consumer``); the output topics are written in
  transactions, and an aborted batch must not count. :class:`MonitorTransport` sets it on the
  aiokafka consumer before that consumer starts (aiokafka reads it in ``start()``).
* Records waiting when the monitor (re)starts were lost or counted twice. At the end of a table
  recovery Faust lets the stream partitions fetch, seeks them back to their committed offsets, and
  only then resumes flow control, which empties the streams' queues: records fetched during the
  seek were counted, then read again (twice), or still queued and dropped, and a partition with no
  committed offset yet (a new tenant's) was never sought back, so what it dropped was gone. The
  monitor's consumer holds the stream partitions from that seek until flow resumes
  (:meth:`_MonitorConsumer.perform_seek`), and seeks never-committed partitions to their beginning
  (:meth:`_MonitorConsumerThread.seek_to_committed`).
* Topic *pattern* subscriptions silently subscribe to nothing (faust-streaming issue 62: "XXX
  pattern does not work" in the aiokafka driver). So the monitor subscribes to the tenant output
  topics that exist, rescans the broker every ``rescan_s`` and, when a tenant appears, shuts the
  worker down cleanly (offsets committed, changelog flushed) so the command restarts it with the
  new topic list (:attr:`MonitorState.restart_requested`).

Tables key by tenant (taken from the topic name, never from a payload) and write one changelog
partition (:class:`OnePartitionTable`). Run one monitor per namespace: the views answer from the
local table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.auth import CredentialsT
from faust.web import Request, Response, View
from mode.utils.times import want_seconds

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.settings import aiokafka_security
from muse_stream.monitor import aggregates
from muse_stream.topics import DEFAULT_NAMESPACE, TopicNames, TopicSpec

logger = logging.getLogger(__name__)

DEFAULT_WEB_PORT = 6066
DEFAULT_WINDOW_S = 60.0
DEFAULT_RETENTION_S = 3600.0
DEFAULT_RESCAN_S = 30.0


@dataclass(frozen=True)
class MonitorSettings:
    bootstrap: str
    data_dir: Path
    namespace: str = DEFAULT_NAMESPACE
    web_port: int = DEFAULT_WEB_PORT
    window_s: float = DEFAULT_WINDOW_S
    retention_s: float = DEFAULT_RETENTION_S
    rescan_s: float = DEFAULT_RESCAN_S
    bins: int = aggregates.DEFAULT_BINS

    @property
    def app_id(self) -> str:
        """Group id and prefix of Faust's own topics: under the namespace's internal prefix."""
        return TopicNames(self.namespace).monitor_app_id


@dataclass
class MonitorState:
    tenants: tuple[str, ...]
    restart_requested: bool = False
    thresholds: tuple[float, ...] = field(default_factory=aggregates.default_thresholds)


# -- Faust's aiokafka consumer: read_committed, and records waiting at a start counted once -------


class _MonitorConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Faust's "seek back" after it dropped fetched records: aiokafka seeks only partitions with
        a committed offset above 0, so the others (never committed) kept the position past the
        dropped records. Those go back to their beginning, as ``auto_offset_reset="earliest"``
        would have started them. Table changelogs are left to Faust's recovery, which seeks them."""
        committed = await super().seek_to_committed()
        never_committed = [tp for tp, offset in committed.items() if not offset and not self.consumer._is_changelog_tp(tp)]
        if never_committed:
            await self.seek_to_beginning(*never_committed)
        return committed


class _MonitorConsumer(faust_aiokafka.Consumer):
    _held: frozenset[Any] = frozenset()  # stream partitions held from a seek until flow resumes

    def _new_consumer_thread(self) -> Any:
        return _MonitorConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Seek back with the stream partitions held: nothing fetched for them reaches the streams
        until :meth:`resume_flow`, which Faust calls after its flow control has emptied the queues."""
        held = {tp for tp in self._get_active_partitions() if not self._is_changelog_tp(tp)}
        self.pause_partitions(held)
        self._held |= held
        await super().perform_seek()

    def resume_flow(self) -> None:
        super().resume_flow()
        held, self._held = self._held, frozenset()
        if held:
            self.resume_partitions(held & self.assignment())


class MonitorTransport(faust_aiokafka.Transport):
    Consumer = _MonitorConsumer


class OnePartitionTable(faust.Table):
    """A table whose changelog has one partition, which every key is written to.

    Faust writes a key to the changelog partition numbered like the source partition of the event
    being processed and insists both topics have as many partitions; tenants' output topics differ
    in partition counts, so no changelog can match them all. The monitor runs as one worker, which
    owns the one partition.
    """

    def partition_for_key(self, key: Any) -> int:
        return 0


class MonitorApp(faust.App):
    """A Faust app with the monitor's consumer (:class:`MonitorTransport`); its producer is Faust's."""

    def _new_transport(self) -> Any:
        return MonitorTransport(self.conf.broker_consumer, self, loop=self.loop)


def faust_topic_specs(app: faust.App) -> list[TopicSpec]:
    """The app's own topics (its tables' changelogs), for :meth:`TopicAdmin.ensure` before it starts.

    Faust cannot create them on Kafka 4: its aiokafka driver sends hand-built MetadataRequest_v1 /
    CreateTopicsRequest_v1 structs, which aiokafka 0.14 can no longer send (no ``prepare``) and
    which predate Kafka 4's protocol baseline (KIP-896). So ``topic_allow_declare`` is off and the topics are made
    here, the way Faust would (same name, partitions and cleanup policy), with the broker's
    default replication like every other muse-stream topic.
    """
    specs = []
    for table in app.tables.values():
        topic = table.changelog_topic
        policy = ",".join(p for p, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on)
        configs = {"cleanup.policy": policy} if policy else {}
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        specs += [TopicSpec(name, topic.partitions or app.conf.topic_partitions, configs) for name in topic.topics]
    return specs


# -- security ------------------------------------------------------------------------------------


def faust_credentials(security: dict[str, Any] | None = None) -> CredentialsT | None:
    """The client config's security settings (``MUSE_CLIENT_CONFIG``, as every muse client reads
    it, translated by :func:`aiokafka_security`) as Faust's ``broker_credentials``, which its
    aiokafka consumer and producer both use; None for a plaintext cluster."""
    security = aiokafka_security() if security is None else security
    protocol = security["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(security["ssl_context"])
    return faust.SASLCredentials(
        username=security.get("sasl_plain_username"),
        password=security.get("sasl_plain_password"),
        ssl_context=security.get("ssl_context"),  # type: ignore[arg-type]  # None (no TLS) is faust's own default
        mechanism=security.get("sasl_mechanism", "PLAIN"),
    )


# -- tenants ---------------------------------------------------------------------------------------


def discover_tenants(admin: TopicAdmin, names: TopicNames) -> tuple[str, ...]:
    """Tenants whose output topic exists on the broker."""
    return tuple(names.tenants_in(admin.existing_topics(), "output"))


# -- the app ---------------------------------------------------------------------------------------


def build_app(settings: MonitorSettings, tenants: Sequence[str]) -> tuple[MonitorApp, MonitorState]:
    if not tenants:
        raise ValueError("the monitor needs at least one tenant output topic to subscribe to")
    names = TopicNames(settings.namespace)
    state = MonitorState(tuple(sorted(tenants)))
    targets = aggregates.reference_targets()
    app = MonitorApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=faust_credentials(),
        datadir=str(settings.data_dir),
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.web_port,
        topic_partitions=1,
        topic_replication_factor=1,
        topic_allow_declare=False,  # created by faust_topic_specs + TopicAdmin: see its docstring
        topic_disable_leader=True,  # no leader-only timers, so no leader-election topic
        table_cleanup_interval=min(30.0, settings.window_s),
        consumer_auto_offset_reset="earliest",
    )
    outputs = app.topic(*(names.output_topic(t) for t in state.tenants), key_serializer="raw", value_serializer="raw")
    windows = (
        app.tables.add(
            OnePartitionTable(
                app,
                name="tenant-windows",
                default=dict,
                partitions=1,
                schema=faust.Schema(key_serializer="json", value_serializer="json"),
                help="tenant -> per-window score stats (muse_stream.monitor.aggregates)",
            )
        )
        .tumbling(settings.window_s, expires=settings.retention_s)
        .relative_to_stream()  # the output record's Kafka timestamp picks the window
    )

    @app.agent(outputs, name="aggregate")
    async def aggregate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if event.message.timestamp < time.time() - settings.retention_s:
                continue  # older than any window kept: nothing to show it in
            tenant = names.tenant_of_topic(event.message.topic)
            scored = aggregates.score_of(event.value, tenant)
            windows[tenant] = aggregates.add_scores(
                windows[tenant].value(),
                [scored] if scored else [],
                thresholds=state.thresholds,
                bins=settings.bins,
                invalid=0 if scored else 1,
            )

    def series(tenant: str) -> list[tuple[float, float, dict[str, Any]]]:
        """(start, end, stats) of the tenant's retained windows, oldest first."""
        oldest = time.time() - settings.retention_s - settings.window_s
        rows = []
        for key, stats in list(windows.table.items()):
            key_tenant, (start, end) = key
            if key_tenant == tenant and end >= oldest:
                rows.append((float(start), float(end), stats))
        return sorted(rows, key=lambda row: row[0])

    def overview(tenant: str, now: float) -> dict[str, Any]:
        rows = series(tenant)
        total: dict[str, Any] = {}
        for _, _, stats in rows:
            total = aggregates.merge(total, stats)
        current = windows.relative_to(now)[tenant].value()  # type: ignore[attr-defined]  # faust's WindowWrapperT stub lacks it
        start = now - now % settings.window_s
        return {
            "tenant": tenant,
            "output_topic": names.output_topic(tenant),
            "current_window": {"start": start, "end": start + settings.window_s, **aggregates.summary(current, targets)},
            "retained": {"windows": len(rows), **aggregates.summary(total, targets)},
        }

    @app.page("/tenants/")
    class TenantsView(View):
        async def get(self, request: Request) -> Response:
            now = time.time()
            return self.json(
                {
                    "namespace": names.namespace,
                    "window_s": settings.window_s,
                    "retention_s": settings.retention_s,
                    "thresholds": list(state.thresholds),
                    "tenants": [overview(t, now) for t in state.tenants],
                }
            )

    @app.page("/tenants/{tenant}/")
    class TenantView(View):
        async def get(self, request: Request, tenant: str) -> Response:
            if tenant not in state.tenants:
                return self.json(
                    {"error": f"no output topic of tenant {tenant!r} is monitored", "tenants": list(state.tenants)}, status=404
                )
            return self.json(
                {
                    **overview(tenant, time.time()),
                    "windows": [{"start": s, "end": e, **aggregates.summary(stats, targets)} for s, e, stats in series(tenant)],
                }
            )

    admin = TopicAdmin(settings.bootstrap)

    @app.timer(settings.rescan_s)
    async def rescan() -> None:
        found = await asyncio.to_thread(discover_tenants, admin, names)
        added = sorted(set(found) - set(state.tenants))
        if added and not state.restart_requested:
            logger.warning("new tenant output topics for %s: restarting the monitor to subscribe to them", added)
            state.restart_requested = True
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's own handler stops it cleanly

    return app, state
