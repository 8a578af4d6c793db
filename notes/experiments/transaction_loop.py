"""How long do back-to-back Kafka transactions take here, for a given retry.backoff.max.ms? (issue 13)

Each cycle: begin, produce 15 records of 700 bytes, send an offset, commit; 5 ms between cycles (the
worker gathers between transactions). Prints the cycle-time distribution.

    .venv/bin/python notes/experiments/transaction_loop.py --retry-backoff-max-ms 100
    .venv/bin/python notes/experiments/transaction_loop.py --retry-backoff-max-ms 10
"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from muse_stream.broker import command_bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retry-backoff-max-ms", type=int, default=100, help="the worker's: 100")
    parser.add_argument("--transactions", type=int, default=2500)
    args = parser.parse_args()
    bootstrap = command_bootstrap()
    namespace = uuid.uuid4().hex[:8]
    output, source = f"tx{namespace}.out", f"tx{namespace}.in"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(output, 1, 1), NewTopic(source, 1, 1)]).values():
        future.result()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tx{namespace}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(source, 0)])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"tx{namespace}",
            "linger.ms": 2,
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": args.retry_backoff_max_ms,
            "compression.type": "lz4",
        }
    )
    try:
        producer.init_transactions(30)
        cycles = []
        for offset in range(args.transactions):
            started = time.perf_counter()
            producer.begin_transaction()
            for _ in range(15):
                producer.produce(output, b"x" * 700, b"k")
            producer.send_offsets_to_transaction([TopicPartition(source, 0, offset)], consumer.consumer_group_metadata(), 10)
            producer.commit_transaction(10)
            cycles.append(1000 * (time.perf_counter() - started))
            time.sleep(0.005)
        ms = np.asarray(cycles)
        print(
            f"retry.backoff.max.ms={args.retry_backoff_max_ms}: {len(ms)} transactions, cycle p50 {np.percentile(ms, 50):.1f} "
            f"p99 {np.percentile(ms, 99):.1f} max {ms.max():.1f} ms; over 100 ms: {(ms > 100).sum()}"
        )
    finally:
        consumer.close()
        admin.delete_topics([output, source])


if __name__ == "__main__":
    main()
