"""A principal's client properties file, as the secure tests read it, and whether it still logs in."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from muse_stream.clients.settings import parse_client_properties


def properties(path: Path) -> dict[str, str]:
    return parse_client_properties(path.read_text(), str(path))


def logs_in(bootstrap: str, path: Path) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, **properties(path), "log_level": 0})
    try:
        admin.list_topics(timeout=5)
        return True
    except KafkaException:
        return False
