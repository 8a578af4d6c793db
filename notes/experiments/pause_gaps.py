"""Does pausing and resuming partitions cost a consumer deliveries under a flood? (issue 13)

A plain confluent-kafka consumer, no worker, reads tenant A's 4 partitions and tenant B's one while
A floods (unthrottled) and B sends 1,000 events/s. It pretends to score (``--work-ms`` per 1,000
records) and, with ``--pause``, pauses and resumes the partitions of each batch of 1,000 (``all``:
every partition in it, as the fair worker did after a full batch; ``flood``: A's only). It prints
the gaps over 150 ms between deliveries and B's age on delivery (after the flood's first 3 s).

    .venv/bin/python notes/experiments/pause_gaps.py --work-ms 20 --pause all
    .venv/bin/python notes/experiments/pause_gaps.py --work-ms 20 --pause flood
    .venv/bin/python notes/experiments/pause_gaps.py --work-ms 20 --pause none
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from muse_stream.bench.latency import _offer
from muse_stream.broker import command_bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-ms", type=float, default=20.0, help="pretend scoring per 1,000 records")
    parser.add_argument("--pause", choices=("all", "flood", "none"), default="all")
    parser.add_argument("--queued-min", type=int, default=10_000, help="queued.min.messages (the fair worker's)")
    args = parser.parse_args()
    bootstrap = command_bootstrap()
    namespace = uuid.uuid4().hex[:8]
    flood_topic, steady_topic = f"exp{namespace}.a", f"exp{namespace}.b"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    steady_spec = NewTopic(steady_topic, 1, 1, config={"message.timestamp.type": "LogAppendTime"})
    for future in admin.create_topics([NewTopic(flood_topic, 4, 1), steady_spec]).values():
        future.result()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"exp{namespace}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "queued.min.messages": args.queued_min,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign([TopicPartition(flood_topic, p) for p in range(4)] + [TopicPartition(steady_topic, 0)])
    context = multiprocessing.get_context("spawn")
    reports: list[multiprocessing.Queue] = [context.Queue(), context.Queue()]
    flood = context.Process(target=_offer, args=(bootstrap, flood_topic, None, 20, "flood-", reports[0]), daemon=True)
    steady = context.Process(target=_offer, args=(bootstrap, steady_topic, 1000.0, 15, "steady-", reports[1]), daemon=True)
    try:
        steady.start()
        time.sleep(3)
        flood.start()
        flood_at = time.monotonic()
        end, last, gaps, ages, consumed = flood_at + 17, time.monotonic(), [], [], 0
        while time.monotonic() < end:
            messages = consumer.consume(1000, timeout=0.05)
            now = time.monotonic()
            if not messages:
                continue
            if now - last > 0.15:
                gaps.append(round(1000 * (now - last)))
            last, consumed = now, consumed + len(messages)
            if now > flood_at + 3:
                wall_ms = time.time() * 1000
                ages += [wall_ms - m.timestamp()[1] for m in messages if m.topic() == steady_topic]
            time.sleep(args.work_ms / 1000 * len(messages) / 1000)
            if args.pause != "none" and len(messages) >= 1000:
                taken = {(m.topic(), m.partition()) for m in messages if args.pause == "all" or m.topic() == flood_topic}
                partitions = [TopicPartition(str(topic), int(partition or 0)) for topic, partition in taken]
                consumer.pause(partitions)
                consumer.resume(partitions)
        age = np.asarray(ages)
        print(
            f"pause {args.pause}, work {args.work_ms:g} ms/1,000, queued.min.messages {args.queued_min}: consumed "
            f"{consumed:,}; delivery gaps over 150 ms: {gaps}; B's age on delivery p50 {np.percentile(age, 50):.0f} "
            f"p99 {np.percentile(age, 99):.0f} max {age.max():.0f} ms"
        )
    finally:
        flood.terminate()
        steady.terminate()
        consumer.close()
        admin.delete_topics([flood_topic, steady_topic])


if __name__ == "__main__":
    main()
