"""Prometheus metrics of one worker (``muse worker --metrics-port P``), fed from each settled batch.

The worker makes one call per batch whose transaction settled (:meth:`WorkerMetrics.record_batch`
with a :class:`BatchReport`); only committed batches are counted, so the counters equal what
read_committed readers find on the output, DLQ and shadow topics. What is a state rather than an
event (aborts so far, the config version in force, the group's lag per input partition) is read when
Prometheus scrapes. Each worker keeps its own registry, so several in one process never share counts.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from muse_stream.clients.settings import committed_offsets_reader_config
from muse_stream.pipeline.scoring import BatchOutcome
from muse_stream.topics import TopicNames

_SHADOW_TENANT = re.compile(rb'"tenant":"([^"]+)"')
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
TRANSACTION_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class BatchReport:
    """One batch whose transaction settled: what it produced, whether it committed, how long it took."""

    outcome: BatchOutcome
    records_in: int
    committed: bool
    transaction_s: float


class _ScrapeTime(Collector):
    """Values read when scraped: aborts, config version, consumer lag of the assigned partitions."""

    def __init__(
        self, aborts: Callable[[], int], config_version: Callable[[], int], lag: Callable[[], Iterable[tuple[str, int, int]]]
    ) -> None:
        self.aborts, self.config_version, self.lag = aborts, config_version, lag

    def collect(self) -> Iterator[Metric]:
        aborts = GaugeMetricFamily("muse_worker_aborts", "transactions aborted so far (their batches are read again)")
        aborts.add_metric([], self.aborts())
        yield aborts
        version = GaugeMetricFamily("muse_worker_config_version", "the config version this worker scores with")
        version.add_metric([], self.config_version())
        yield version
        lag = GaugeMetricFamily(
            "muse_worker_consumer_lag",
            "input records the workers' group has not committed yet, per partition",
            labels=["topic", "partition"],
        )
        for topic, partition, behind in self.lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag


class PartitionLag:
    """The group's lag on every input partition (high watermark minus the group's committed offset),
    through a consumer of its own that never subscribes, so it never joins or disturbs the group. (The
    worker's own consumer cannot be asked from the scrape thread: its calls wait for its poll.)"""

    def __init__(self, bootstrap: str, group_id: str, topic_pattern: str) -> None:
        self._consumer = Consumer(committed_offsets_reader_config(bootstrap, group_id))
        self._pattern = re.compile(topic_pattern)
        self._lock = threading.Lock()

    def __call__(self) -> list[tuple[str, int, int]]:
        with self._lock:
            try:
                metadata = self._consumer.list_topics(timeout=5)
                partitions = [
                    TopicPartition(name, p)
                    for name, topic in sorted(metadata.topics.items())
                    if self._pattern.match(name) and topic.error is None
                    for p in sorted(topic.partitions)
                ]
                if not partitions:
                    return []
                found = []
                for tp in self._consumer.committed(partitions, timeout=5):
                    _, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
                    found.append((tp.topic, tp.partition, max(high - max(tp.offset, 0), 0)))
                return found
            except KafkaException:  # the broker is away: no lag figures this scrape rather than a failed scrape
                return []

    def close(self) -> None:
        with self._lock:
            self._consumer.close()


class WorkerMetrics:
    def __init__(
        self,
        names: TopicNames,
        *,
        aborts: Callable[[], int] = lambda: 0,
        config_version: Callable[[], int] = lambda: 0,
        lag: Callable[[], Iterable[tuple[str, int, int]]] = lambda: (),
    ) -> None:
        self.names = names
        self.registry = CollectorRegistry()
        self.events_in = PromCounter(
            "muse_worker_events_in", "input records committed, per tenant", ["tenant"], registry=self.registry
        )
        self.results = PromCounter(
            "muse_worker_results", "score results committed to the output topics", ["tenant"], registry=self.registry
        )
        self.dead_letters = PromCounter(
            "muse_worker_dead_letters", "dead letters committed to the DLQ topics", ["tenant", "reason"], registry=self.registry
        )
        self.shadow_results = PromCounter(
            "muse_worker_shadow_results", "shadow results committed to the shadow topic", ["tenant"], registry=self.registry
        )
        self.batch_size = Histogram(
            "muse_worker_batch_size",
            "input records per committed transaction",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.transaction_seconds = Histogram(
            "muse_worker_transaction_duration_seconds",
            "from a transaction's begin to its commit",
            buckets=TRANSACTION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ScrapeTime(aborts, config_version, lag))
        self._server: WSGIServer | None = None

    def record_batch(self, report: BatchReport) -> None:
        if not report.committed:
            return  # aborted: nothing of it is visible, and its records come again
        tenant_of = self.names.tenant_of_topic
        results = Counter(tenant_of(r.topic) for r in report.outcome.results)
        letters = Counter(
            (tenant_of(r.topic), orjson.loads(r.value).get("reason_code", "unknown")) for r in report.outcome.dead_letters
        )
        shadows = Counter(m[1].decode() for r in report.outcome.shadows if (m := _SHADOW_TENANT.search(r.value)))
        for tenant, n in results.items():
            self.results.labels(tenant).inc(n)
            self.events_in.labels(tenant).inc(n)
        for (tenant, reason), n in letters.items():
            self.dead_letters.labels(tenant, reason).inc(n)
            self.events_in.labels(tenant).inc(n)
        for tenant, n in shadows.items():
            self.shadow_results.labels(tenant).inc(n)
        self.batch_size.observe(report.records_in)
        self.transaction_seconds.observe(report.transaction_s)

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on a daemon thread; returns the port (useful with 0: any free one)."""
        self._server, _ = start_http_server(port, addr=address, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
