"""The README's "Tenant isolation" blocks, run as written, in order, on the secured throwaway broker
the isolation tests use: a user who copies them gets a tenant whose client file works with kcat on
its own topics only, a rotation that stops the old password, the ACLs and quotas the comments
promise, and a removal that leaves nothing behind.

The only substitutions, for what the README takes from `muse broker start --secure` on the default
home and port: the fixture's broker stands for that line, so its bootstrap replaces 127.0.0.1:19092,
its credentials directory ~/.local/state/muse-stream/broker/credentials/ (and the README's elided
`.../`), the admin's file is MUSE_CLIENT_CONFIG (what the local secured broker picks by itself), a
fresh namespace replaces `muse`, and a temporary directory replaces /tmp/rdkafka."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.clients.security import SecurityAdmin, quotas
from muse_stream.clients.settings import CLIENT_CONFIG_ENV
from muse_stream.security.acls import ADMIN, tenant_principal
from muse_stream.topics import TopicNames
from tests.support.credentials import logs_in
from tests.support.readme import muse_environment, readme_block, run_muse, run_shell, split_comment

pytestmark = pytest.mark.kafka
SECTION = "## Tenant isolation"
OLD_LIBRDKAFKA = "**kcat and old librdkafka.**"


def test_the_isolation_blocks_run_as_written_on_the_secured_broker(
    secure_kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = secure_kafka.credentials_dir
    assert credentials is not None
    ns, rdkafka = topic_names.namespace, tmp_path / "rdkafka"

    def here(line: str) -> str:
        for readme, ours in (
            ("~/.local/state/muse-stream/broker/credentials/", f"{credentials}/"),
            (".../", f"{credentials}/tenants/"),
            ("muse.tenant.", f"{ns}.tenant."),
            ("127.0.0.1:19092", secure_kafka.bootstrap),
            ("/tmp/rdkafka", str(rdkafka)),
        ):
            line = line.replace(readme, ours)
        return line

    block = [split_comment(line) for line in readme_block(SECTION)]
    assert block[0][0] == "muse broker start --secure"  # the secure_kafka fixture: the same start, free ports
    # Debian 12's kcat needs a newer librdkafka: the README's note says how, and its kcat line is the
    # block's, run with it.
    link, debian_kcat = (split_comment(line)[0] for line in readme_block(OLD_LIBRDKAFKA))
    run_shell(here(link), os.environ)
    env = muse_environment(secure_kafka.bootstrap, ns, **{CLIENT_CONFIG_ENV: str(credentials / f"{ADMIN}.properties")})
    monkeypatch.setenv(CLIENT_CONFIG_ENV, env[CLIENT_CONFIG_ENV])  # this test's own checks, as the admin
    principal = tenant_principal(topic_names, "bank-a")
    tenant_file = credentials / "tenants" / f"{principal}.properties"
    outputs: dict[str, str] = {}
    file_after: dict[str, str | None] = {}  # the tenant's client file after each command
    previous = ""
    for command, comment in block[1:]:
        if not command:  # a comment line under a command: what it prints
            assert here(comment.removeprefix("... ")) in outputs[previous], outputs[previous]
            continue
        if command.startswith("kcat "):
            assert debian_kcat == "LD_LIBRARY_PATH=/tmp/rdkafka " + command.replace(
                "~/.local/state/muse-stream/broker/credentials/tenants/", ".../"
            ), "the note's kcat line is not the block's"
            outputs[command] = run_shell(here(debian_kcat), env)
        else:
            outputs[command] = run_muse(here(command), env)
        file_after[command] = tenant_file.read_text() if tenant_file.exists() else None
        previous = command
        if command == "muse tenants quota bank-a --produce-byte-rate 2097152":  # "replaces the tenant's quotas"
            found = quotas(secure_kafka.bootstrap, principal)
            assert {user: quota.describe() for user, quota in found.items()} == {principal: "produce=2097152B/s"}

    prefix = topic_names.tenant_prefix("bank-a")
    adding = "muse tenants add bank-a --partitions 3 --produce-byte-rate 1048576 --request-percentage 25"
    added = outputs[adding]
    assert "quota    produce=1048576B/s,requests=25%" in added, added
    # kcat, logged in with the tenant's file: its own topics, nothing else.
    [listing] = [out for command, out in outputs.items() if command.startswith("kcat ")]
    listed = re.findall(r'topic "([^"]+)"', listing)
    assert sorted(listed) == sorted(prefix + kind for kind in ("input", "output", "dlq", "labels")), listing
    # "partitions, prefix, quotas"
    [row] = [line for line in outputs["muse tenants list"].splitlines() if line.startswith("bank-a\t")]
    assert "partitions=3" in row and f"prefix={prefix}" in row and "quota=produce=1048576B/s,requests=25%" in row, row
    # "new password, new file; the old password stops working"
    rotation = "muse tenants credentials bank-a --rotate"
    assert str(tenant_file) in outputs[rotation]
    old, new = tmp_path / "old.properties", tmp_path / "new.properties"
    old.write_text(file_after[adding] or "")
    new.write_text(file_after[rotation] or "")
    assert old.read_text() != new.read_text()
    assert not logs_in(secure_kafka.bootstrap, old)
    # "the exact ACLs as kafka-acls.sh commands"
    acls = outputs["muse tenants acls bank-a"].splitlines()
    assert acls[0].startswith(f"# tenant bank-a: principal User:{principal}")
    assert all(line.startswith(("#", "kafka-acls.sh --bootstrap-server ")) for line in acls)
    assert any(f"User:{principal} --operation Write --topic '{prefix}input'" in line for line in acls)
    # "credential, ACLs and client file; topics only when asked": here, asked.
    [removal] = [out for command, out in outputs.items() if command.startswith("muse tenants remove bank-a")]
    assert f"removed the credential and ACLs of {principal}" in removal
    assert "deleted 4 topics" in removal, removal
    assert not tenant_file.exists() and not logs_in(secure_kafka.bootstrap, new)
    # After the whole block, nothing names the tenant: no rule, and no quota left on its principal.
    rules = SecurityAdmin(secure_kafka.bootstrap).acls()
    assert [acl for acl in rules if acl.principal == principal or acl.name.startswith(prefix)] == []
    assert quotas(secure_kafka.bootstrap, principal) == {}
