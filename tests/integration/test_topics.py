"""Tenant and internal topics on a real broker: created once, configs read back and checked."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin, delete_namespace, tenants_on_broker
from muse_stream.clients.settings import consumer_config
from muse_stream.topics import TopicError, TopicNames, TopicSpec

pytestmark = pytest.mark.kafka


def test_tenant_topics_are_created_with_their_configs(admin: TopicAdmin, topic_names: TopicNames) -> None:
    specs = topic_names.internal_topic_specs() + topic_names.tenant_topic_specs("bank-a", partitions=3)
    created = admin.ensure(specs)
    assert sorted(created) == sorted(spec.name for spec in specs)

    partitions = admin.existing_topics()
    assert partitions[topic_names.input_topic("bank-a")] == 3
    assert partitions[topic_names.output_topic("bank-a")] == 3
    configs = admin.topic_configs([topic_names.config_topic, topic_names.dlq_topic("bank-a"), topic_names.input_topic("bank-a")])
    assert configs[topic_names.config_topic]["cleanup.policy"] == "compact"
    assert configs[topic_names.dlq_topic("bank-a")]["retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert configs[topic_names.input_topic("bank-a")]["cleanup.policy"] == "delete"


def test_created_topics_are_served_when_ensure_returns_and_gone_when_delete_returns(
    kafka: BrokerHandle, admin: TopicAdmin
) -> None:
    """Creation and deletion are acknowledged a moment before the broker serves (or stops listing)
    the topics: right after creation, an offsets request answered NOT_LEADER_FOR_PARTITION for most
    partitions on the local broker (36 of 60 in one probe). Five namespaces, four partitions each."""
    reader = Consumer(consumer_config(kafka.bootstrap, f"t-served-{uuid.uuid4().hex}"))
    try:
        for _ in range(5):
            names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
            admin.ensure(names.tenant_topic_specs("bank-a", partitions=4))
            for partition in range(4):  # raises on NOT_LEADER_FOR_PARTITION
                assert (
                    reader.get_watermark_offsets(
                        TopicPartition(names.input_topic("bank-a"), partition), timeout=10, cached=False
                    )[1]
                    == 0
                )
            delete_namespace(admin, names)
            assert not [topic for topic in admin.existing_topics() if topic.startswith(f"{names.namespace}.")]
    finally:
        reader.close()


def test_ensure_is_idempotent_and_lists_tenants(admin: TopicAdmin, topic_names: TopicNames) -> None:
    for tenant in ("bank-a", "bank-b"):
        admin.ensure(topic_names.tenant_topic_specs(tenant))
    assert admin.ensure(topic_names.tenant_topic_specs("bank-a")) == []
    assert tenants_on_broker(admin, topic_names) == {"bank-a": 1, "bank-b": 1}


def test_a_topic_with_the_wrong_config_is_refused_by_name(admin: TopicAdmin, topic_names: TopicNames) -> None:
    wrong = TopicSpec(topic_names.config_topic, 1, {"cleanup.policy": "delete"})
    admin.ensure([wrong])
    with pytest.raises(TopicError, match=r"internal\.config.*cleanup\.policy='delete'.*needs cleanup\.policy='compact'"):
        admin.ensure(topic_names.internal_topic_specs())


def test_fewer_partitions_than_asked_is_refused(admin: TopicAdmin, topic_names: TopicNames) -> None:
    admin.ensure(topic_names.tenant_topic_specs("bank-a", partitions=1))
    with pytest.raises(
        TopicError,
        match=r"has 1 partitions, fewer than the 4 asked for; grow it with `muse tenants alter bank-a --partitions 4` \(namespace t",
    ):
        admin.ensure(topic_names.tenant_topic_specs("bank-a", partitions=4))


def test_tenants_alter_grows_partitions_and_refuses_to_shrink(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    admin: TopicAdmin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    cli = ["tenants", "--namespace", topic_names.namespace]
    assert main([*cli, "add", "bank-a", "--partitions", "2"]) == 0
    capsys.readouterr()
    # Asking `add` for more partitions than the tenant has points to `alter`, not to a tool we do not ship.
    assert main([*cli, "add", "bank-a", "--partitions", "5"]) == 2
    err = capsys.readouterr().err
    assert "has 2 partitions, fewer than the 5 asked for" in err
    assert "`muse tenants alter bank-a --partitions 5`" in err and "kafka-topics" not in err

    assert main([*cli, "alter", "bank-a", "--partitions", "5"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["grew", "from", "2", topic_names.input_topic("bank-a"), "partitions=5"] in lines
    assert ["grew", "from", "2", topic_names.output_topic("bank-a"), "partitions=5"] in lines
    partitions = admin.existing_topics()
    assert partitions[topic_names.input_topic("bank-a")] == 5 and partitions[topic_names.output_topic("bank-a")] == 5
    assert partitions[topic_names.dlq_topic("bank-a")] == 1
    assert main([*cli, "add", "bank-a", "--partitions", "5"]) == 0  # now satisfied

    assert main([*cli, "alter", "bank-a", "--partitions", "5"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main([*cli, "alter", "bank-a", "--partitions", "3"]) == 2
    err = capsys.readouterr().err
    assert "has 5 partitions; it cannot shrink to 3: Kafka only adds partitions" in err and "\n" not in err.strip()
    assert admin.existing_topics()[topic_names.input_topic("bank-a")] == 5
    assert main([*cli, "alter", "bank-z", "--partitions", "3"]) == 2
    err = capsys.readouterr().err
    assert "do not exist" in err and "muse tenants add" in err
