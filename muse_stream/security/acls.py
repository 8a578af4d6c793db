"""Who may do what on the broker: muse's principals and their ACLs, as data. Pure, no Kafka client.

The same table feeds ``muse tenants add`` (which creates these ACLs), ``muse tenants acls`` (which
prints them for an operations team running its own cluster) and the isolation tests. Least
privilege: every right below is one that some muse component needs, and nothing is granted
cluster-wide. Topic rights are on literal names (a tenant's four topics, the namespace's internal
topics), so a right on a tenant's input never reaches its output; groups and transactional ids are
prefixed, so a tenant's own clients can name theirs freely under its prefix.

A tenant's principal is its topic prefix without the trailing dot (``muse.tenant.bank-a``): unique
per namespace, and no tenant can be called after one of muse's own principals (those hold no dot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from muse_stream.topics import TopicNames

ADMIN = "admin"
WORKER = "muse-worker"
OPERATOR = "muse-operator"
MONITOR = "muse-monitor"
ANALYST = "muse-analyst"
# muse's own principals, besides the admin super user; each gets a credential file.
SERVICE_PRINCIPALS = (WORKER, OPERATOR, MONITOR, ANALYST)
SCRAM_MECHANISM = "SCRAM-SHA-512"

TOPIC, GROUP, TRANSACTIONAL_ID = "TOPIC", "GROUP", "TRANSACTIONAL_ID"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
READ, WRITE, CREATE, DESCRIBE_CONFIGS = "READ", "WRITE", "CREATE", "DESCRIBE_CONFIGS"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule, from any host (Kafka's READ and WRITE imply DESCRIBE)."""

    principal: str  # a SCRAM user name, without "User:"
    resource_type: str  # TOPIC | GROUP | TRANSACTIONAL_ID
    pattern: str  # LITERAL | PREFIXED
    name: str
    operation: str  # READ | WRITE | CREATE | DESCRIBE_CONFIGS

    @property
    def kafka_principal(self) -> str:
        return f"User:{self.principal}"

    def kafka_acls_args(self) -> str:
        """The arguments of Kafka's ``kafka-acls.sh --add`` that create this rule."""
        option = {TOPIC: "--topic", GROUP: "--group", TRANSACTIONAL_ID: "--transactional-id"}[self.resource_type]
        operation = "".join(word.capitalize() for word in self.operation.split("_"))
        return (
            f"--allow-principal {self.kafka_principal} --operation {operation} {option} '{self.name}' "
            f"--resource-pattern-type {self.pattern.lower()}"
        )


def tenant_principal(names: TopicNames, tenant: str) -> str:
    return names.tenant_prefix(tenant).rstrip(".")


def _topic(principal: str, topic: str, *operations: str) -> list[Acl]:
    return [Acl(principal, TOPIC, LITERAL, topic, op) for op in operations]


def tenant_acls(names: TopicNames, tenant: str) -> list[Acl]:
    """Every rule that names this tenant's topics or prefix: the tenant's own rights, and the rights
    of muse's principals on its topics. Removing these removes every trace of the tenant."""
    me = tenant_principal(names, tenant)
    prefix = names.tenant_prefix(tenant)
    inp, out, dlq, labels = (names.tenant_topic(tenant, kind) for kind in ("input", "output", "dlq", "labels"))
    acls = [
        # The tenant: write its input, read its output, DLQ and labels; its own groups and
        # transactional ids under its prefix.
        *_topic(me, inp, WRITE),
        *_topic(me, out, READ),
        *_topic(me, dlq, READ),
        *_topic(me, labels, READ),
        Acl(me, GROUP, PREFIXED, prefix, READ),
        Acl(me, TRANSACTIONAL_ID, PREFIXED, prefix, WRITE),
        # The worker reads the input and writes the output and DLQ (checking the configs muse
        # requires of them, see TopicAdmin.check).
        *_topic(WORKER, inp, READ, DESCRIBE_CONFIGS),
        *_topic(WORKER, out, WRITE),
        *_topic(WORKER, dlq, WRITE, DESCRIBE_CONFIGS),
        # Operators read outputs (for plans), the monitor outputs, analysts inputs, outputs and labels.
        *_topic(OPERATOR, out, READ),
        *_topic(MONITOR, out, READ),
        *_topic(ANALYST, inp, READ),
        *_topic(ANALYST, out, READ),
        *_topic(ANALYST, labels, READ),
    ]
    return acls


def namespace_acls(names: TopicNames) -> list[Acl]:
    """The rights of muse's principals on a namespace's internal topics, groups and transactions."""
    config, shadow, models, history = (names.config_topic, names.shadow_topic, names.models_topic, names.config_history_topic)
    monitor_state = f"{names.monitor_app_id}-"  # the Faust app's changelog topics
    return [
        *_topic(WORKER, config, READ, DESCRIBE_CONFIGS),
        *_topic(WORKER, models, READ, DESCRIBE_CONFIGS),
        *_topic(WORKER, shadow, WRITE),
        Acl(WORKER, GROUP, LITERAL, names.worker_group, READ),
        Acl(WORKER, TRANSACTIONAL_ID, PREFIXED, f"{names.worker_group}.", WRITE),
        *_topic(OPERATOR, config, READ, WRITE, DESCRIBE_CONFIGS),
        *_topic(OPERATOR, history, READ, WRITE, DESCRIBE_CONFIGS),
        *_topic(OPERATOR, models, READ, WRITE, DESCRIBE_CONFIGS),
        *_topic(OPERATOR, shadow, READ),
        Acl(OPERATOR, TRANSACTIONAL_ID, LITERAL, f"muse-config.{names.namespace}", WRITE),
        # Analysts replay with the live config, a version rebuilt from the history, and its models.
        *_topic(ANALYST, config, READ),
        *_topic(ANALYST, history, READ),
        *_topic(ANALYST, models, READ),
        Acl(MONITOR, GROUP, LITERAL, names.monitor_app_id, READ),
        *[Acl(MONITOR, TOPIC, PREFIXED, monitor_state, op) for op in (READ, WRITE, CREATE, DESCRIBE_CONFIGS)],
    ]


def principals_of(acls: Iterable[Acl]) -> list[str]:
    return sorted({acl.principal for acl in acls})


def format_kafka_acls(acls: Iterable[Acl], bootstrap: str = "BOOTSTRAP", command_config: str = "admin.properties") -> str:
    """Shell lines for Kafka's own ``kafka-acls.sh``, one rule each."""
    return "".join(
        f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {command_config} --add {acl.kafka_acls_args()}\n"
        for acl in sorted(acls)
    )
