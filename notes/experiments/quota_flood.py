"""What a flood under a client-id produce quota puts into its topic, second by second (issue 13).

`muse bench noisy-neighbour`'s quota phase: tenant A's unthrottled producer under a 4 MiB/s quota.
A plain consumer (the worker's fetch settings) reads A's input from its end while the flood runs;
each line is what it received and what reached the topic (high watermarks) in that second.

    .venv/bin/python notes/experiments/quota_flood.py
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from muse_stream.bench.noisy_neighbour import FLOOD, _flood
from muse_stream.bench.progress import high_watermark_counter
from muse_stream.bench.workload import bench_names
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.security import set_client_id_quota
from muse_stream.clients.settings import consumer_config, worker_prefetch
from muse_stream.defaults import NOISY_QUOTA_BYTES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quota-bytes", type=int, default=NOISY_QUOTA_BYTES)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    bootstrap = command_bootstrap()
    names = bench_names("qflood")
    admin = TopicAdmin(bootstrap)
    ensure_tenant_topics(admin, names, [FLOOD], partitions=4)
    topic, client_id = names.input_topic(FLOOD), f"{names.namespace}-flood"
    set_client_id_quota(bootstrap, client_id, args.quota_bytes)
    config = consumer_config(
        bootstrap, f"qflood-{names.namespace}", **{"fetch.wait.max.ms": 10, **worker_prefetch(5000, fair=True)}
    )
    consumer = Consumer(config)
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(4)])
    written = high_watermark_counter(bootstrap, [(topic, p) for p in range(4)])
    try:
        flood, _report = _flood(bootstrap, names, args.seconds + 2.0, client_id, 4)
        started, received = time.monotonic(), 0
        last, tick = (0, written()), started + 1
        while time.monotonic() - started < args.seconds:
            received += sum(1 for m in consumer.consume(5000, timeout=0.05) if m.error() is None)
            if time.monotonic() >= tick:
                now = written()
                print(f"{time.monotonic() - started:4.1f} s  received +{received - last[0]:,}  written +{now - last[1]:,}")
                last, tick = (received, now), tick + 1
        flood.terminate()
    finally:
        consumer.close()
        written.close()  # type: ignore[attr-defined]
        set_client_id_quota(bootstrap, client_id, None)
        delete_namespace(admin, names)


if __name__ == "__main__":
    main()
