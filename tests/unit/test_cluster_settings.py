"""A local cluster's settings and the replication topics get: pure, no broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from muse_stream.broker.kafka_jars import BrokerSetupError
from muse_stream.broker.local import LocalCluster, replication_settings, server_properties
from muse_stream.clients.admin import replication_for
from muse_stream.security.acls import ADMIN
from muse_stream.security.credentials import ScramLogin


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_topics_get_three_replicas_with_two_in_sync_when_the_cluster_can_and_never_more_than_its_brokers() -> None:
    assert replication_for(1) == (1, {})
    assert replication_for(2) == (2, {})
    assert replication_for(3) == (3, {"min.insync.replicas": "2"})
    assert replication_for(7) == (3, {"min.insync.replicas": "2"})


def test_one_node_keeps_its_internal_topics_at_one_replica() -> None:
    settings = replication_settings(1)
    assert settings["transaction.state.log.replication.factor"] == "1"
    assert settings["transaction.state.log.min.isr"] == "1"
    assert "min.insync.replicas" not in settings


def test_a_three_node_cluster_has_a_production_clusters_durability() -> None:
    voters = ((1, 20001), (2, 20003), (3, 20005))
    props = _properties(server_properties(port=20002, controller_port=20003, data_dir=Path("/d"), node_id=2, voters=voters))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:20001,2@127.0.0.1:20003,3@127.0.0.1:20005"
    assert "controller.quorum.bootstrap.servers" not in props
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "3", key
    for key in ("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr", "min.insync.replicas"):
        assert props[key] == "2", key
    assert props["unclean.leader.election.enable"] == "false"


def test_cluster_nodes_take_consecutive_port_pairs_and_share_one_cluster_id(tmp_path: Path) -> None:
    cluster = LocalCluster(home=tmp_path, port=20000, nodes=3)
    nodes = cluster.members
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [(1, 20000, 20001), (2, 20002, 20003), (3, 20004, 20005)]
    assert len({n.cluster_id for n in nodes}) == 1 and nodes[0].cluster_id
    assert cluster.bootstrap == "127.0.0.1:20000,127.0.0.1:20002,127.0.0.1:20004"
    assert LocalCluster(home=tmp_path / "one", port=20000).members[0].home == tmp_path / "one"  # the old layout


def test_a_secured_cluster_of_three_is_refused_in_one_line_naming_both_ways_out(tmp_path: Path) -> None:
    cluster = LocalCluster(home=tmp_path, port=20000, nodes=3)
    for secure, tls in ((True, False), (True, True)):
        with pytest.raises(BrokerSetupError) as refused:
            cluster.start(secure=secure, tls=tls)
        message = str(refused.value)
        assert "\n" not in message
        assert "--secure" in message and "--nodes" in message and "3" in message
    assert not (tmp_path / "node-1").exists()  # refused before anything was written or started


def test_a_secured_single_node_writes_sasl_settings_beside_its_standalone_quorum() -> None:
    login = ScramLogin(ADMIN, "secret")
    props = _properties(server_properties(port=20000, controller_port=20001, data_dir=Path("/d"), admin=login))
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:20000,CONTROLLER://127.0.0.1:20001"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:20001"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_muse_broker_start_secure_nodes_3_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "MUSE_HOME": str(tmp_path), "MUSE_BROKER_PORT": "20000"}
    result = subprocess.run(
        [sys.executable, "-m", "muse_stream.cli", "broker", "start", "--secure", "--nodes", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("muse: error: muse broker start --secure runs one node, not 3:")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before the home was made
