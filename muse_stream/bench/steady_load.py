"""A steady offered load over several tenants, from a producer in its own process, so the
benchmark's own reading and fitting (in its process, under its GIL) never hold up the pacing.

Event ``i`` (id ``ev-i``, the record's key too) goes to ``topics[i % len(topics)]``; its features are
a row never sent before (rows are generated in chunks of fresh seeds), so traffic after a fit is
traffic the fit never saw. An event counts as produced once the broker acknowledged it (idempotent
producer: retries never duplicate it).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from confluent_kafka import KafkaError, Message, Producer

from muse_stream.bench.workload import compact_features
from muse_stream.clients.settings import producer_config
from muse_stream.errors import MuseError

CHUNK = 5000
FIRST_SEED = 10_000  # far from the seeds the benchmarks train and fit models on


def event_id(index: int) -> str:
    return f"ev-{index}"


@dataclass(frozen=True)
class LoadReport:
    sent: int
    seconds: float
    failed: tuple[str, ...]  # event ids the broker never acknowledged

    @property
    def produced(self) -> list[str]:
        failed = set(self.failed)
        return [e for e in map(event_id, range(self.sent)) if e not in failed]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("nan")


def _produce(
    bootstrap: str,
    topics: Sequence[str],
    rate: float,
    stop: Event,
    sent_so_far: Synchronized,
    report: multiprocessing.Queue,
) -> None:
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 2}))
    for topic in topics:
        producer.list_topics(topic, timeout=30)  # metadata before the clock starts: no first-second burst
    failed: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append((message.key() or b"").decode())

    chunk = 0
    features = compact_features(CHUNK, seed=FIRST_SEED)
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate) + 1
        while sent < due:
            if sent // CHUNK != chunk:
                chunk = sent // CHUNK
                features = compact_features(CHUNK, seed=FIRST_SEED + chunk)
            key = event_id(sent).encode()
            value = b'{"event_id":"%s","features":%s}' % (key, features[sent % CHUNK])
            try:
                producer.produce(topics[sent % len(topics)], value, key, on_delivery=delivered)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        sent_so_far.value = sent
        producer.poll(0)
        time.sleep(0.002)
    seconds = time.monotonic() - started
    left = producer.flush(120)
    report.put((sent, seconds, tuple(failed), left))


class SteadyLoad:
    """``rate`` events/s over ``topics`` until :meth:`stop`, which returns what was produced."""

    def __init__(self, bootstrap: str, topics: Sequence[str], rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._sent = context.Value("q", 0)
        self._report: multiprocessing.Queue = context.Queue()
        self._process = context.Process(
            target=_produce, args=(bootstrap, list(topics), rate, self._stop, self._sent, self._report), daemon=True
        )

    def start(self) -> SteadyLoad:
        self._process.start()
        return self

    @property
    def sent(self) -> int:
        """Events handed to the producer so far (acknowledged or not yet)."""
        return int(self._sent.value)

    def stop(self) -> LoadReport:
        self._stop.set()
        try:
            sent, seconds, failed, left = self._report.get(timeout=180)
        except Exception as error:  # queue.Empty: the producer died or hung
            self._process.kill()
            raise MuseError(f"the load producer (pid {self._process.pid}) did not report within 180 s") from error
        finally:
            self._process.join(30)
        if left:
            raise MuseError(f"the load producer could not deliver {left} events within 120 s; check the broker")
        return LoadReport(sent, seconds, failed)
