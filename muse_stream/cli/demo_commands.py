"""``muse demo``: the main job on an embedded local broker.

Until the scoring pipeline lands, the demo shows the Kafka base it stands on: a broker started for
you, two tenants' topics, and one event round-tripped through a transaction.
"""

from __future__ import annotations

import argparse
import time
import uuid

import orjson
from confluent_kafka import Consumer, Producer

from muse_stream.broker import acquire_broker
from muse_stream.broker.clients import consumer_config, transactional_producer_config
from muse_stream.errors import MuseError
from muse_stream.topics import TopicAdmin, TopicNames

DEMO_TENANTS = ("bank-a", "bank-b")


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the demo on a local broker started for you")
    demo.add_argument("--namespace", default="demo", help="topic namespace (default: %(default)s)")
    demo.add_argument("--keep-broker", action="store_true", help="leave a broker this demo started running")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    with acquire_broker(stop_if_started=not args.keep_broker, allow_container=False) as broker:
        print(f"broker: {broker.bootstrap} ({broker.source}{', started for this demo' if broker.started_here else ''})")
        names = TopicNames(args.namespace)
        admin = TopicAdmin(broker.bootstrap)
        for tenant in DEMO_TENANTS:
            admin.ensure(names.internal_topic_specs() + names.tenant_topic_specs(tenant))
            print(f"tenant {tenant}: topics under prefix {names.tenant_prefix(tenant)}")
        event = {"event_id": str(uuid.uuid4()), "intent": "card-fraud", "features": {"amount": 42.0}}
        topic = names.input_topic(DEMO_TENANTS[0])
        producer = Producer(transactional_producer_config(broker.bootstrap, f"demo-{uuid.uuid4()}"))
        producer.init_transactions()
        producer.begin_transaction()
        producer.produce(topic, key=event["event_id"].encode(), value=orjson.dumps(event))
        producer.commit_transaction()
        print(f"produced event {event['event_id']} to {topic} in a committed transaction")
        consumer = Consumer(consumer_config(broker.bootstrap, f"demo-{uuid.uuid4()}"))
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                received = orjson.loads(message.value())
                if received["event_id"] == event["event_id"]:
                    print(f"read it back with isolation.level=read_committed from {topic} "
                          f"partition {message.partition()} offset {message.offset()}")
                    return 0
        finally:
            consumer.close()
        raise MuseError(f"the demo event did not come back from {topic} within 30 s; see `muse broker logs`")
