"""ACLs, SCRAM credentials and client quotas on a secured cluster, through the admin's client.

What to grant is decided in :mod:`muse_stream.security.acls` (pure); this module only applies,
removes and reads it back. confluent-kafka's AdminClient speaks ACLs and SCRAM credentials;
client quotas it cannot (no AlterClientQuotas in its Python API), so they go through Kafka's own
``kafka-configs`` tool (``kafka.admin.ConfigCommand`` from the cached Kafka jars).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from muse_stream.clients.settings import admin_config, client_settings
from muse_stream.errors import MuseError
from muse_stream.security.acls import SCRAM_MECHANISM, Acl
from muse_stream.security.credentials import ScramLogin, new_password, write_private

ADMIN_TIMEOUT_S = 30.0
SCRAM_ITERATIONS = 8192


class SecurityError(MuseError):
    """The cluster refused or could not apply a security change."""


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(
        ResourceType[acl.resource_type],
        acl.name,
        ResourcePatternType[acl.pattern],
        acl.kafka_principal,
        "*",
        AclOperation[acl.operation],
        AclPermissionType.ALLOW,
    )


# None in an AclBindingFilter matches any value; confluent-kafka's stubs type those arguments as str only.
_ANY = cast(str, None)


def _acl(binding: AclBinding) -> Acl:
    return Acl(
        binding.principal.removeprefix("User:"),
        # AclBinding turns str and int arguments into the enums, so these are enums whatever its stubs say.
        cast(ResourceType, binding.restype).name,
        cast(ResourcePatternType, binding.resource_pattern_type).name,
        binding.name,
        cast(AclOperation, binding.operation).name,
    )


class SecurityAdmin:
    """The admin's view of a secured cluster: ACLs, SCRAM users and quotas."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient(admin_config(bootstrap))
        self._require_admin()

    def _require_admin(self) -> None:
        """Refuse early, in one line, a login that may not manage credentials and ACLs (Alter on
        the cluster). Also a guard: confluent-kafka 2.16 aborts the process (munmap_chunk) when
        DescribeUserScramCredentials is refused, so that call must never meet a refusal."""
        future = self._admin.describe_cluster(include_authorized_operations=True, request_timeout=ADMIN_TIMEOUT_S)
        operations = self._result(future, "checking the login's rights on the cluster").authorized_operations or []
        if AclOperation.ALTER not in operations:
            who = client_settings().security.get("sasl.username", "this login")
            raise SecurityError(
                f"{who} may not manage credentials and ACLs on {self.bootstrap} (no Alter on the "
                f"cluster); use the admin's client config (MUSE_CLIENT_CONFIG / --client-config)"
            )

    # -- ACLs ----------------------------------------------------------------------------------

    def grant(self, acls: Iterable[Acl]) -> None:
        """Create the rules (creating an existing rule is a no-op in Kafka)."""
        bindings = [_binding(acl) for acl in acls]
        if bindings:
            for future in self._admin.create_acls(bindings, request_timeout=ADMIN_TIMEOUT_S).values():
                self._result(future, "creating ACLs")

    def revoke(self, acls: Iterable[Acl]) -> None:
        filters = [
            AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)
            for b in map(_binding, acls)
        ]
        if filters:
            for future in self._admin.delete_acls(filters, request_timeout=ADMIN_TIMEOUT_S).values():
                self._result(future, "deleting ACLs")

    def revoke_principal(self, principal: str) -> None:
        """Every rule of ``principal``, whatever it names (also rules added by hand)."""
        any_filter = AclBindingFilter(
            ResourceType.ANY, _ANY, ResourcePatternType.ANY, f"User:{principal}", _ANY, AclOperation.ANY, AclPermissionType.ANY
        )
        for future in self._admin.delete_acls([any_filter], request_timeout=ADMIN_TIMEOUT_S).values():
            self._result(future, f"deleting the ACLs of {principal}")

    def acls(self) -> list[Acl]:
        """Every rule on the cluster."""
        any_filter = AclBindingFilter(
            ResourceType.ANY, _ANY, ResourcePatternType.ANY, _ANY, _ANY, AclOperation.ANY, AclPermissionType.ANY
        )
        future = self._admin.describe_acls(any_filter, request_timeout=ADMIN_TIMEOUT_S)
        return sorted(_acl(binding) for binding in self._result(future, "listing ACLs"))

    # -- SCRAM credentials ---------------------------------------------------------------------

    def set_password(self, user: str, password: str | None = None) -> str:
        """Create or replace ``user``'s SCRAM-SHA-512 credential; returns the password."""
        password = password or new_password()
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        futures = self._admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, info, password.encode(), None)], request_timeout=ADMIN_TIMEOUT_S
        )
        for future in futures.values():
            self._result(future, f"setting the credential of {user}")
        return password

    def delete_user(self, user: str) -> bool:
        """Remove ``user``'s credential; False if it had none."""
        if user not in self.users():
            return False
        futures = self._admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)], request_timeout=ADMIN_TIMEOUT_S
        )
        for future in futures.values():
            self._result(future, f"deleting the credential of {user}")
        return True

    def users(self) -> list[str]:
        future = self._admin.describe_user_scram_credentials(request_timeout=ADMIN_TIMEOUT_S)
        return sorted(self._result(future, "listing SCRAM users"))

    def _result(self, future, doing: str):  # noqa: ANN001, ANN202 - confluent-kafka futures are untyped
        try:
            return future.result()
        except KafkaException as error:
            raise SecurityError(
                f"{doing} on {self.bootstrap} failed: {error.args[0].str()}; the client config "
                f"must be the admin's (MUSE_CLIENT_CONFIG / --client-config)"
            ) from None


# -- client quotas, through Kafka's kafka-configs ---------------------------------------------------

QUOTA_KEYS = {"producer_byte_rate": "produce bytes/s", "request_percentage": "request time %"}


@dataclass(frozen=True)
class Quota:
    producer_byte_rate: int | None = None
    request_percentage: float | None = None

    def settings(self) -> dict[str, str]:
        return {
            key: str(value)
            for key, value in (("producer_byte_rate", self.producer_byte_rate), ("request_percentage", self.request_percentage))
            if value is not None
        }

    def describe(self) -> str:
        parts = []
        if self.producer_byte_rate is not None:
            parts.append(f"produce={self.producer_byte_rate}B/s")
        if self.request_percentage is not None:
            parts.append(f"requests={self.request_percentage:g}%")
        return ",".join(parts) or "none"


def java_client_properties(login: ScramLogin) -> str:
    """The same login for a Java client (Kafka's own tools)."""
    lines = [
        f"security.protocol={login.properties()['security.protocol']}",
        f"sasl.mechanism={SCRAM_MECHANISM}",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{login.username}" password="{login.password}";',
    ]
    if login.ca_file:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={login.ca_file}"]
    return "\n".join(lines) + "\n"


def _admin_login() -> ScramLogin:
    security = client_settings().security
    if "sasl.username" not in security:
        raise SecurityError(
            "quotas need the admin's SCRAM login: set MUSE_CLIENT_CONFIG (--client-config) to the admin's client properties file"
        )
    ca = security.get("ssl.ca.location")
    return ScramLogin(security["sasl.username"], security["sasl.password"], Path(ca) if ca else None)


def _config_command(bootstrap: str, *arguments: str, login: bool = True) -> str:
    """Kafka's kafka-configs with ``arguments``, logged in as the admin (``login``; else as the client
    config says: with none, over PLAINTEXT)."""
    from muse_stream.broker.kafka_jars import TOOL_JVM_OPTIONS, ensure_kafka_jars, require_java

    java, libs = require_java(), ensure_kafka_jars()
    with tempfile.TemporaryDirectory(prefix="muse-quota-") as scratch:
        needs_login = login or "sasl.username" in client_settings().security
        command_config = (
            ["--command-config", str(write_private(Path(scratch) / "admin.properties", java_client_properties(_admin_login())))]
            if needs_login
            else []
        )
        result = subprocess.run(
            [
                java,
                *TOOL_JVM_OPTIONS,
                "-Dlog4j2.level=ERROR",
                "-cp",
                f"{libs}/*",
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                bootstrap,
                *command_config,
                *arguments,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SecurityError(f"kafka-configs {' '.join(arguments[:3])} on {bootstrap} failed: {last[0]}")
    return result.stdout


def set_quota(bootstrap: str, user: str, quota: Quota) -> None:
    """Replace ``user``'s produce byte-rate and request-time quotas (None: no quota of that kind)."""
    wanted = quota.settings()
    # kafka-configs refuses to delete what is not set, so what to unset is asked first; a quota of
    # every kind unsets nothing, and spares that JVM.
    current = {} if wanted.keys() >= QUOTA_KEYS.keys() else quotas(bootstrap, user).get(user, Quota()).settings()
    unset = [key for key in current if key not in wanted]
    if not wanted and not unset:
        return
    arguments = ["--alter", "--entity-type", "users", "--entity-name", user]
    if wanted:
        arguments += ["--add-config", ",".join(f"{k}={v}" for k, v in wanted.items())]
    if unset:
        arguments += ["--delete-config", ",".join(unset)]
    _config_command(bootstrap, *arguments)


def set_client_id_quota(bootstrap: str, client_id: str, producer_byte_rate: int | None) -> None:
    """A produce quota on a client id (None: remove it). Unlike a principal's quota, Kafka enforces it
    on any broker, secured or not, on every client that calls itself ``client_id``."""
    change = (
        ["--add-config", f"producer_byte_rate={producer_byte_rate}"]
        if producer_byte_rate is not None
        else ["--delete-config", "producer_byte_rate"]
    )
    _config_command(bootstrap, "--alter", "--entity-type", "clients", "--entity-name", client_id, *change, login=False)


_QUOTA_LINE = re.compile(r"Quota configs for user-principal '(?P<user>[^']+)' are (?P<configs>.*)")


def quotas(bootstrap: str, user: str | None = None) -> dict[str, Quota]:
    """User -> quota, for every user that has one (or only ``user``)."""
    found: dict[str, Quota] = {}
    which = ["--entity-name", user] if user else []
    for line in _config_command(bootstrap, "--describe", "--entity-type", "users", *which).splitlines():
        match = _QUOTA_LINE.match(line.strip())
        if not match:
            continue
        configs = dict(item.split("=", 1) for item in match["configs"].split(", ") if "=" in item)
        rate = configs.get("producer_byte_rate")
        percent = configs.get("request_percentage")
        found[match["user"]] = Quota(int(float(rate)) if rate else None, float(percent) if percent else None)
    return found
