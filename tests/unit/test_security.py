"""Pure parts of tenant isolation: the ACL table, the secured broker's settings, client files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from muse_stream.broker.local import server_properties
from muse_stream.broker.tls import BrokerTls
from muse_stream.cli import main
from muse_stream.clients.settings import ClientSettings, aiokafka_security, parse_client_properties
from muse_stream.security.acls import (
    ADMIN,
    GROUP,
    PREFIXED,
    SERVICE_PRINCIPALS,
    TOPIC,
    TRANSACTIONAL_ID,
    WORKER,
    Acl,
    format_kafka_acls,
    namespace_acls,
    tenant_acls,
    tenant_principal,
)
from muse_stream.security.credentials import ScramLogin, read_login, write_client_properties
from muse_stream.topics import TopicNames

NAMES = TopicNames("muse")
# Tenants whose names are prefixes of each other's: the dot after the name keeps them apart.
TENANTS = ["bank", "bank-a", "bank_a", "banka"]


def _matches(acl: Acl, name: str) -> bool:
    return name.startswith(acl.name) if acl.pattern == PREFIXED else name == acl.name


def _resources_of(tenant: str) -> dict[str, list[str]]:
    prefix = NAMES.tenant_prefix(tenant)
    return {
        TOPIC: [NAMES.tenant_topic(tenant, kind) for kind in ("input", "output", "dlq", "labels")],
        GROUP: [prefix + "app"],
        TRANSACTIONAL_ID: [prefix + "tx"],
    }


def test_no_tenant_rule_reaches_another_tenants_resources() -> None:
    for tenant in TENANTS:
        mine = [acl for acl in tenant_acls(NAMES, tenant) if acl.principal == tenant_principal(NAMES, tenant)]
        assert mine
        for other in TENANTS:
            if other == tenant:
                continue
            for acl in mine:
                assert not any(_matches(acl, name) for name in _resources_of(other)[acl.resource_type]), (acl, other)
            # Nor does any rule muse's principals get for this tenant name the other's topics.
            for acl in tenant_acls(NAMES, tenant):
                assert not any(_matches(acl, t) for t in _resources_of(other)[TOPIC] if acl.resource_type == TOPIC)


def test_tenant_rights_are_exactly_write_input_read_the_rest_and_own_prefixes() -> None:
    me = tenant_principal(NAMES, "bank-a")
    rules = {(a.resource_type, a.pattern, a.name, a.operation) for a in tenant_acls(NAMES, "bank-a") if a.principal == me}
    p = "muse.tenant.bank-a."
    assert rules == {
        (TOPIC, "LITERAL", p + "input", "WRITE"),
        (TOPIC, "LITERAL", p + "output", "READ"),
        (TOPIC, "LITERAL", p + "dlq", "READ"),
        (TOPIC, "LITERAL", p + "labels", "READ"),
        (GROUP, PREFIXED, p, "READ"),
        (TRANSACTIONAL_ID, PREFIXED, p, "WRITE"),
    }


def test_tenant_principals_never_collide_with_muses_own() -> None:
    for tenant in ["admin", "muse-worker", *SERVICE_PRINCIPALS]:
        try:
            principal = tenant_principal(NAMES, tenant)
        except Exception:  # noqa: BLE001 - an invalid tenant name cannot collide either
            continue
        assert principal not in (ADMIN, *SERVICE_PRINCIPALS)


def test_no_rule_is_on_the_cluster_or_on_every_topic() -> None:
    for acl in [*namespace_acls(NAMES), *tenant_acls(NAMES, "bank-a")]:
        assert acl.resource_type in (TOPIC, GROUP, TRANSACTIONAL_ID)
        assert acl.name.startswith(("muse.", "muse-config.muse")), acl
        if acl.resource_type == TOPIC and acl.pattern == PREFIXED:
            assert acl.name == "muse.internal.monitor-", acl  # only the monitor's own changelogs


def test_kafka_acls_commands_are_exact() -> None:
    acl = Acl(WORKER, TOPIC, "LITERAL", "muse.tenant.bank-a.input", "DESCRIBE_CONFIGS")
    assert format_kafka_acls([acl], "kafka:9092", "admin.properties") == (
        "kafka-acls.sh --bootstrap-server kafka:9092 --command-config admin.properties --add --allow-principal "
        "User:muse-worker --operation DescribeConfigs --topic 'muse.tenant.bank-a.input' --resource-pattern-type literal\n"
    )


def test_tenants_acls_prints_one_kafka_acls_command_per_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "acls", "bank-a", "--namespace", "muse"]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if line.startswith("kafka-acls.sh")]
    assert len(commands) == len(tenant_acls(NAMES, "bank-a")) + len(namespace_acls(NAMES))
    assert format_kafka_acls(tenant_acls(NAMES, "bank-a")) in out


def test_secured_broker_settings() -> None:
    admin = ScramLogin("admin", "pw")
    text = server_properties(port=19092, controller_port=19093, data_dir=Path("/x"), admin=admin)
    settings = dict(line.split("=", 1) for line in text.splitlines())
    assert settings["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert settings["sasl.enabled.mechanisms"] == settings["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert settings["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["super.users"] == "User:admin;User:ANONYMOUS"
    assert 'username="admin" password="pw"' in settings["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    tls = server_properties(port=19092, controller_port=19093, data_dir=Path("/x"), admin=admin, tls=BrokerTls(Path("/t")))
    tls_settings = dict(line.split("=", 1) for line in tls.splitlines())
    assert tls_settings["listeners"].startswith("SASL_SSL://")
    assert tls_settings["ssl.truststore.location"] == "/t/ca.crt"


def test_client_file_is_private_and_readable_by_muse_kcat_and_aiokafka(tmp_path: Path) -> None:
    path = write_client_properties(tmp_path / "c" / "t.properties", ScramLogin("muse.tenant.bank-a", "s3cret"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = parse_client_properties(path.read_text(), str(path))
    assert settings == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "muse.tenant.bank-a",
        "sasl.password": "s3cret",
    }
    assert read_login(path) == ScramLogin("muse.tenant.bank-a", "s3cret")
    kwargs = aiokafka_security(ClientSettings(security=settings, security_file=str(path)))
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["security_protocol"] == "SASL_PLAINTEXT"


def test_monitor_credentials_follow_the_client_config() -> None:
    from muse_stream.monitor.app import faust_credentials

    assert faust_credentials({"security_protocol": "PLAINTEXT"}) is None
    credentials = faust_credentials(
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "muse-monitor",
            "sasl_plain_password": "pw",
        }
    )
    assert (credentials.username, credentials.mechanism.value, credentials.protocol.value) == (
        "muse-monitor",
        "SCRAM-SHA-512",
        "SASL_PLAINTEXT",
    )
