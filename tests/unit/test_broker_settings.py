"""Pure parts of the broker and topic layer: settings, version checks, names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from muse_stream.broker.kafka_jars import _java_major_version
from muse_stream.broker.local import new_cluster_id, server_properties
from muse_stream.topics import TENANT_TOPIC_KINDS, TopicError, TopicNames


def test_one_node_settings_make_transactions_and_groups_work() -> None:
    text = server_properties(port=19092, controller_port=19093, data_dir=Path("/x"))
    settings = dict(line.split("=", 1) for line in text.splitlines())
    assert settings["process.roles"] == "broker,controller"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert settings[key] == "1", key
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_java_major_version(line: str, major: int | None) -> None:
    assert _java_major_version(line) == major


def test_each_tenant_prefix_is_shared_by_no_other_tenant() -> None:
    names = TopicNames("muse")
    tenants = ["a", "a-b", "a_b", "ab", "bank-1", "bank-10"]
    for tenant in tenants:
        for other in tenants:
            if other != tenant:
                for kind in TENANT_TOPIC_KINDS:
                    assert not names.tenant_topic(other, kind).startswith(names.tenant_prefix(tenant))


@pytest.mark.parametrize("bad", ["", "Bank", "a.b", "-a", "a" * 49, "a b", "ü"])
def test_bad_tenant_names_are_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="tenant name"):
        TopicNames().input_topic(bad)


def test_the_tenant_comes_from_the_topic() -> None:
    names = TopicNames("ns")
    assert names.tenant_of_topic("ns.tenant.bank-a.input") == "bank-a"
    with pytest.raises(TopicError):
        names.tenant_of_topic("other.tenant.bank-a.input")
    with pytest.raises(TopicError):
        names.tenant_of_topic("ns.tenant.bank-a.secret")


def test_input_regex_matches_only_input_topics() -> None:
    import re

    names = TopicNames("ns")
    pattern = re.compile(names.input_topic_regex)
    assert pattern.match("ns.tenant.bank-a.input")
    assert not pattern.match("ns.tenant.bank-a.output")
    assert not pattern.match("nsx.tenant.bank-a.input")
    assert not pattern.match("ns.internal.config")


def test_missing_java_names_the_version_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    from muse_stream.broker import kafka_jars

    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(kafka_jars.BrokerSetupError, match="Java 17 or newer.*MUSE_BOOTSTRAP"):
        kafka_jars.require_java()


def test_missing_maven_with_no_cached_jars_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from muse_stream.broker import kafka_jars

    monkeypatch.setenv("MUSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(kafka_jars.BrokerSetupError, match=r"not cached in .*Apache Maven 3\.6\+"):
        kafka_jars.ensure_kafka_jars()


def test_cached_jars_need_no_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from muse_stream.broker import kafka_jars

    monkeypatch.setenv("MUSE_CACHE_DIR", str(tmp_path))
    libs = kafka_jars.kafka_libs_dir()
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("x")
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    assert kafka_jars.ensure_kafka_jars() == libs


def test_cluster_ids_never_look_like_an_option() -> None:
    # One id in 64 would start with '-' if drawn naively; CI once failed on exactly that.
    ids = [new_cluster_id() for _ in range(3000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)


def test_muse_cache_dir_moves_the_artifact_cache_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # One cache directory: the model-artifact cache must follow MUSE_CACHE_DIR like Kafka's jars do.
    from muse_stream.broker import kafka_jars
    from muse_stream.config.artifact_topic import default_cache_dir

    monkeypatch.setenv("MUSE_CACHE_DIR", str(tmp_path))
    assert kafka_jars.kafka_libs_dir().is_relative_to(tmp_path)
    assert default_cache_dir() == tmp_path / "artifacts"


def test_the_first_jar_download_says_what_it_downloads_before_maven_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Maven runs quietly for a minute or more the first time: the user is told why before it starts."""
    from muse_stream.broker import kafka_jars

    monkeypatch.setenv("MUSE_CACHE_DIR", str(tmp_path / "cache"))
    seen = tmp_path / "stderr-when-maven-started"
    mvn = tmp_path / "mvn"  # stands in for a Maven that cannot reach Maven Central
    mvn.write_text("#!/bin/sh\nexit 1\n")
    mvn.chmod(0o755)
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: str(mvn) if name == "mvn" else None)
    real_run = kafka_jars.subprocess.run

    def run(command: list[str], **kwargs: object) -> object:  # what the user had been told when Maven started
        seen.write_text(capsys.readouterr().err)
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(kafka_jars.subprocess, "run", run)
    with pytest.raises(kafka_jars.BrokerSetupError, match="Maven Central failed"):
        kafka_jars.ensure_kafka_jars()
    told = seen.read_text()
    assert f"downloading Apache Kafka {kafka_jars.KAFKA_VERSION} jars (~60 MB) from Maven Central" in told
    assert str(kafka_jars.kafka_libs_dir()) in told


def test_a_throwaway_broker_whose_ports_were_taken_after_they_were_chosen_moves_to_other_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two test sessions side by side can choose the same free ports; the one that finds them taken
    by the time it starts must move on (it once failed a CI run instead)."""
    from muse_stream.broker import local, selection

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        chosen = iter([taken, taken + 2])
        monkeypatch.setattr(selection, "free_port_pair", lambda *args, **kwargs: next(chosen))
        started: list[int] = []

        def start(cluster: local.LocalCluster, *args: object, **kwargs: object) -> bool:
            if not local.port_is_free(cluster.port):
                raise local.PortTaken(f"port {cluster.port} taken")
            started.append(cluster.port)
            return True

        monkeypatch.setattr(local.LocalCluster, "start", start)
        monkeypatch.setattr(local.LocalCluster, "stop", lambda cluster: None)
        with selection.throwaway_cluster() as cluster:
            assert cluster.port == taken + 2 and started == [taken + 2]


def test_a_broker_refuses_to_launch_on_a_taken_port_with_port_taken(tmp_path: Path) -> None:
    from muse_stream.broker import local

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(local.PortTaken, match=f"port {taken} on 127.0.0.1 \\(client listener\\) is taken"):
            local.LocalBroker(home=tmp_path, port=taken).launch()
