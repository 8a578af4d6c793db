import json, os
from confluent_kafka import Consumer, Producer

kafka = os.environ.get("MUSE_BOOTSTRAP", "127.0.0.1:19092")
topics = os.environ.get("TENANT_TOPICS", "muse.tenant.bank-a.")  # <namespace>.tenant.<tenant>.
event = {"event_id": "tx-123", "intent": "card-fraud", "features": {"amount_log": 3.2, "hour_sin": -0.5}}
producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
producer.produce(topics + "input", json.dumps(event), key="card-42")
producer.flush()
consumer = Consumer({"bootstrap.servers": kafka, "group.id": "bank-a-scores",
                     "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
consumer.subscribe([topics + "output", topics + "dlq"])  # every event gets one record on one of them
while (msg := consumer.poll(30)) is None or msg.error() or msg.key() != b"card-42":
    pass
print(msg.topic(), msg.key().decode(), msg.value().decode())
consumer.close()
