"""docker/compose.secure.yaml runs the broker `muse broker start --secure` runs: the same properties as
muse_stream/broker/local.py's (the one source of truth; no Docker engine here, so the file is read,
not run), the same SCRAM principals bootstrapped at format, the admin's client file as muse writes it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from muse_stream.broker.local import server_properties
from muse_stream.clients.settings import parse_client_properties
from muse_stream.security.acls import ADMIN, SCRAM_MECHANISM, SERVICE_PRINCIPALS
from muse_stream.security.credentials import ScramLogin

COMPOSE = Path(__file__).parents[2] / "docker" / "compose.secure.yaml"
PASSWORD = "pw-Admin_1"
# What compose substitutes: ${VAR:?message} and ${VAR} from the environment, $$ is a literal $.
ENVIRONMENT = {"MUSE_ADMIN_PASSWORD": PASSWORD} | {
    f"MUSE_{name.removeprefix('muse-').upper()}_PASSWORD": f"pw-{name}" for name in SERVICE_PRINCIPALS
}
# Where the container's listeners differ from the local broker's 127.0.0.1 ports by design.
ADDRESS_KEYS = {"listeners", "advertised.listeners", "controller.quorum.bootstrap.servers", "listener.security.protocol.map"}


def interpolate(text: str) -> str:
    def variable(match: re.Match[str]) -> str:
        return ENVIRONMENT[match["name"]]

    return re.sub(r"(?<!\$)\$\{(?P<name>[A-Z_]+)(:\?[^}]*)?\}", variable, text).replace("$$", "$")


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def local() -> dict[str, str]:
    return properties(
        server_properties(
            port=19092, controller_port=9093, data_dir=Path("/var/lib/kafka/data"), admin=ScramLogin(ADMIN, PASSWORD)
        )
    )


def listeners(value: str) -> dict[str, str]:
    """NAME -> host:port of a listeners value."""
    return {name: address.removeprefix("//") for name, address in (item.split(":", 1) for item in value.split(","))}


def test_the_brokers_properties_are_local_pys_secure_ones(compose: dict[str, Any], local: dict[str, str]) -> None:
    broker = properties(compose["configs"]["server-properties"]["content"])
    for key in local.keys() - ADDRESS_KEYS:
        assert broker.get(key) == local[key], key
    # One setting more: the host-facing listener's login, the same as the in-network one's.
    jaas = f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"
    assert broker.keys() - local.keys() == {f"listener.name.external.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"}
    assert broker[f"listener.name.external.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"] == local[jaas]
    # The listeners: local.py's, plus EXTERNAL, which is SASL too; the controller on loopback only.
    protocols = dict(item.split(":") for item in broker["listener.security.protocol.map"].split(","))
    local_protocols = dict(item.split(":") for item in local["listener.security.protocol.map"].split(","))
    assert protocols == local_protocols | {"EXTERNAL": "SASL_PLAINTEXT"}
    bound = listeners(broker["listeners"])
    assert bound.keys() == listeners(local["listeners"]).keys() | {"EXTERNAL"}
    assert bound["CONTROLLER"].startswith("127.0.0.1:") and broker["controller.quorum.bootstrap.servers"] == bound["CONTROLLER"]
    assert listeners(broker["advertised.listeners"]).keys() == bound.keys() - {"CONTROLLER"}


def test_the_admin_and_muses_principals_are_bootstrapped_when_the_storage_is_formatted(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    script = kafka["command"][0]
    added = re.findall(r'--add-scram "(?P<mechanism>[A-Z0-9-]+)=\[name=(?P<name>[^,]+),password=(?P<password>[^\]]+)\]"', script)
    assert {name for _, name, _ in added} == {ADMIN, *SERVICE_PRINCIPALS} and len(added) == 1 + len(SERVICE_PRINCIPALS)
    assert {mechanism for mechanism, _, _ in added} == {SCRAM_MECHANISM}
    # Each password is read from the container's environment, which compose fills from the host's.
    for _, name, password in added:
        variable = password.removeprefix("${").removesuffix("}")
        assert kafka["environment"][variable] == ENVIRONMENT[variable], name
    assert "format --standalone" in script and "exec /opt/kafka/bin/kafka-server-start.sh /etc/muse/server.properties" in script
    mounted = {config["source"]: config["target"] for config in kafka["configs"]}
    assert mounted["server-properties"] == "/etc/muse/server.properties"


def test_muse_logs_in_as_the_admin_with_a_client_file_as_muse_writes_it(compose: dict[str, Any]) -> None:
    muse = compose["services"]["muse"]
    target = {config["source"]: config["target"] for config in muse["configs"]}["admin-client-properties"]
    assert muse["environment"]["MUSE_CLIENT_CONFIG"] == target
    client = parse_client_properties(compose["configs"]["admin-client-properties"]["content"], "compose")
    assert client == ScramLogin(ADMIN, PASSWORD).properties()
    assert muse["environment"]["MUSE_BOOTSTRAP"] == "kafka:19092"  # the in-network SASL listener
