"""Kafka client settings in one place, so every producer and consumer agrees on the guarantees."""

from __future__ import annotations

import uuid
from typing import Any

from muse_stream.topics import ARTIFACT_MAX_BYTES, DEAD_LETTER_MAX_BYTES

# librdkafka requires message.timeout.ms <= transaction.timeout.ms; keep a margin.
TRANSACTION_TIMEOUT_MS = 60_000
MESSAGE_TIMEOUT_MS = 50_000


def admin_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    # Warnings and errors only: librdkafka's info lines (queue purges on close) are noise in a CLI.
    return {"bootstrap.servers": bootstrap, "log_level": 4, **overrides}


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer: no duplicates from retries, order kept per partition."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "message.max.bytes": DEAD_LETTER_MAX_BYTES,
        **overrides,
    }


def transactional_producer_config(bootstrap: str, transactional_id: str, **overrides: Any) -> dict[str, Any]:
    return producer_config(
        bootstrap,
        **{"transactional.id": transactional_id, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS, **overrides},
    )


def consumer_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that sees only committed records and commits offsets only when told to."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **overrides,
    }


def artifact_producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer that may send one model artifact as one (large) record."""
    return producer_config(bootstrap, **{"message.max.bytes": ARTIFACT_MAX_BYTES, "linger.ms": 0, **overrides})


def log_reader_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """A read_committed reader of whole partitions through ``assign()``: it never joins its group
    (librdkafka insists on a group.id, so it gets a unique unused one) and never commits; it signals
    end-of-partition so a reader knows when it has caught up."""
    return consumer_config(
        bootstrap,
        f"muse-log-reader-{uuid.uuid4().hex}",
        # Small fetch waits: these readers either read to the end once or follow a low-volume log
        # whose changes must apply in well under a second.
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 20, **overrides},
    )
