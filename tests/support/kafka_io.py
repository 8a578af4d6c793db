"""Producing to and reading from the real broker in tests, and running workers as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, Producer

from muse_stream.broker.clients import consumer_config, producer_config


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Produce (key, value) pairs with an idempotent producer and wait until all are acknowledged."""
    producer = Producer(producer_config(bootstrap))
    failures: list[str] = []
    count = 0

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    assert producer.flush(60) == 0, "records still unacknowledged after 60 s"
    assert not failures, failures[:3]
    return count


def read_committed(bootstrap: str, topics: list[str], *, expect: int, timeout: float = 60.0,
                   settle: float = 1.0) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of committed records, read until `expect` arrived and `settle` s passed quietly."""
    consumer = Consumer(consumer_config(bootstrap, f"test-reader-{uuid.uuid4()}"))
    consumer.subscribe(topics)
    records: list[tuple[str, bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.2)
            for message in batch:
                if message.error() is None:
                    records.append((message.topic(), message.key(), message.value()))
            if batch:
                last = time.monotonic()
            elif len(records) >= expect and time.monotonic() - last >= settle:
                break
    finally:
        consumer.close()
    return records


class WorkerProcess:
    """`muse worker` in its own process, so that tests can SIGKILL it like a crash would."""

    def __init__(self, bootstrap: str, namespace: str, worker_id: str, log_dir: Path, *extra: str) -> None:
        self.args = [sys.executable, "-m", "muse_stream.cli", "worker", "--namespace", namespace,
                     "--worker-id", worker_id, *extra]
        self.env = {**os.environ, "MUSE_BOOTSTRAP": bootstrap}
        self.log_path = log_dir / f"worker-{worker_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
