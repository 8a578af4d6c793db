"""Shared fixtures. The broker is real Apache Kafka: MUSE_BOOTSTRAP, a container, or the local one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from muse_stream.broker import BrokerHandle, acquire_broker
from muse_stream.broker.selection import throwaway_broker
from muse_stream.clients.admin import TopicAdmin
from muse_stream.topics import TopicNames


@pytest.fixture(scope="session")
def kafka() -> Iterator[BrokerHandle]:
    """Started on first use only, so unit tests never wait for a broker: MUSE_BOOTSTRAP, a container,
    or a throwaway local broker (fresh data, free ports) that is deleted afterwards."""
    with acquire_broker(throwaway=True) as handle:
        yield handle


@pytest.fixture
def topic_names() -> TopicNames:
    """A fresh namespace per test, so tests never see each other's records."""
    return TopicNames(f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def admin(kafka: BrokerHandle) -> TopicAdmin:
    return TopicAdmin(kafka.bootstrap)


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[BrokerHandle]:
    """A throwaway local broker with SASL/SCRAM and ACLs (`muse broker start --secure`), started on
    first use: always local, as only then are its admin's and muse's principals' credentials known."""
    with throwaway_broker(secure=True) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _muse_environment_restored() -> Iterator[None]:
    """Commands run in-process (``main([...])``) export their global options and a secured local
    broker's admin login to ``os.environ`` for their child processes; no test may leave them to the
    next one (a leaked TLS client config made every later client speak TLS to a plain broker)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("MUSE_")}
    yield
    for key in [key for key in os.environ if key.startswith("MUSE_") and key not in saved]:
        del os.environ[key]
    os.environ.update(saved)
