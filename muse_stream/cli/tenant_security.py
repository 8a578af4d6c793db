"""The secure-mode parts of ``muse tenants``: credentials, ACLs, quotas, removal.

Secure mode is when the client config (``MUSE_CLIENT_CONFIG`` / ``--client-config``; for the local
broker started with ``--secure``, its admin file by default) logs in with SASL.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from muse_stream.broker import command_bootstrap
from muse_stream.errors import MuseError
from muse_stream.security.acls import format_kafka_acls, namespace_acls, tenant_acls, tenant_principal
from muse_stream.topics import TopicNames, validate_tenant_name

if TYPE_CHECKING:
    from muse_stream.clients.security import Quota


def add_options(parser: argparse.ArgumentParser) -> None:
    """``tenants add``'s secure-mode options."""
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the tenant's client properties file "
        "(secure mode; default: tenants/<principal>.properties next to the admin's client config)",
    )
    _quota_options(parser)


def _quota_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--produce-byte-rate",
        type=int,
        metavar="BYTES_PER_S",
        help="Kafka produce quota of the tenant's principal, bytes per second (secure mode)",
    )
    parser.add_argument(
        "--request-percentage",
        type=float,
        metavar="PERCENT",
        help="Kafka request quota of the tenant's principal: percent of one broker I/O and network "
        "thread's time per quota window (Kafka's request_percentage; secure mode)",
    )


def register(actions: argparse._SubParsersAction) -> None:
    credentials = actions.add_parser("credentials", help="show, or --rotate, a tenant's SCRAM credential (secure mode)")
    credentials.add_argument("name", help="tenant name")
    credentials.add_argument("--rotate", action="store_true", help="replace the password; the old one stops working")
    credentials.add_argument("--out", type=Path, help="where to write the new client properties file")
    credentials.set_defaults(handler=_credentials)

    remove = actions.add_parser("remove", help="remove a tenant's credential and ACLs (and, when asked, its topics)")
    remove.add_argument("name", help="tenant name")
    remove.add_argument("--delete-topics", action="store_true", help="also delete the tenant's topics and their data")
    remove.set_defaults(handler=_remove)

    acls = actions.add_parser("acls", help="print the exact ACLs of a tenant, as kafka-acls.sh commands")
    acls.add_argument("name", help="tenant name")
    acls.add_argument("--bootstrap-server", default="BOOTSTRAP", help="address to put in the commands")
    acls.add_argument(
        "--command-config", default="admin.properties", help="the admin's Java client properties file to put in the commands"
    )
    acls.set_defaults(handler=_acls)

    quota = actions.add_parser("quota", help="set a tenant's produce and request quotas (secure mode)")
    quota.add_argument("name", help="tenant name")
    _quota_options(quota)
    quota.set_defaults(handler=_quota)


def _quota_of(args: argparse.Namespace) -> Quota | None:
    from muse_stream.clients.security import Quota

    if args.produce_byte_rate is None and args.request_percentage is None:
        return None
    for value, option in ((args.produce_byte_rate, "--produce-byte-rate"), (args.request_percentage, "--request-percentage")):
        if value is not None and value <= 0:
            raise MuseError(f"{option} must be positive, got {value}")
    return Quota(args.produce_byte_rate, args.request_percentage)


def _require_secure(action: str) -> str:
    """The cluster's address, once the admin's login is known to be in use."""
    from muse_stream.clients.tenant_access import secure_mode

    bootstrap = command_bootstrap()  # for the secured local broker, also picks its admin's login
    if not secure_mode():
        raise MuseError(
            f"`muse tenants {action}` needs a secured cluster and the admin's login: set MUSE_CLIENT_CONFIG "
            "(--client-config) to the admin's client properties file (`muse broker start --secure` prints it)"
        )
    return bootstrap


def after_add(args: argparse.Namespace, bootstrap: str, names: TopicNames) -> None:
    """In secure mode: the tenant's credential, ACLs and quotas, after its topics."""
    from muse_stream.clients.security import SecurityAdmin, set_quota
    from muse_stream.clients.tenant_access import grant_tenant, secure_mode

    quota = _quota_of(args)
    if not secure_mode():
        if quota or args.out:
            raise MuseError("--out and quotas need a secured cluster and the admin's login (MUSE_CLIENT_CONFIG)")
        return
    access = grant_tenant(SecurityAdmin(bootstrap), names, args.name, args.out)
    print(f"acls     {access.acls} rules for principal User:{access.principal} (see `muse tenants acls {args.name}`)")
    if access.credentials_file:
        print(f"credentials  {access.credentials_file}  (mode 600; kcat -F, or muse --client-config)")
    else:
        print(f"credentials  exist for {access.principal}; kept (rotate with `muse tenants credentials {args.name} --rotate`)")
    if quota:
        set_quota(bootstrap, access.principal, quota)
        print(f"quota    {quota.describe()}")


def quotas_by_tenant(bootstrap: str, names: TopicNames, tenants: Iterable[str]) -> dict[str, str]:
    from muse_stream.clients.security import quotas
    from muse_stream.clients.tenant_access import secure_mode

    if not secure_mode():
        return {}
    found = quotas(bootstrap)
    return {tenant: found[p].describe() for tenant in tenants if (p := tenant_principal(names, tenant)) in found}


def _credentials(args: argparse.Namespace) -> int:
    from muse_stream.clients.security import SecurityAdmin
    from muse_stream.clients.tenant_access import default_credentials_file, rotate_tenant

    names = TopicNames(args.namespace)
    validate_tenant_name(args.name)
    security = SecurityAdmin(_require_secure("credentials"))
    principal = tenant_principal(names, args.name)
    if args.rotate:
        path = rotate_tenant(security, names, args.name, args.out)
        print(f"rotated the password of {principal}; new client file {path} (the old password no longer logs in)")
        return 0
    exists = principal in security.users()
    path = args.out or default_credentials_file(names, args.name)
    print(f"{principal}\tcredential={'yes' if exists else 'no'}\tfile={path}{'' if path.exists() else ' (missing)'}")
    return 0 if exists else 1


def _remove(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.clients.security import Quota, SecurityAdmin, set_quota
    from muse_stream.clients.tenant_access import revoke_tenant

    names = TopicNames(args.namespace)
    validate_tenant_name(args.name)
    bootstrap = _require_secure("remove")
    had = revoke_tenant(SecurityAdmin(bootstrap), names, args.name)
    set_quota(bootstrap, tenant_principal(names, args.name), Quota())
    print(
        f"removed the credential and ACLs of {tenant_principal(names, args.name)}"
        if had
        else f"{tenant_principal(names, args.name)} had no credential; removed any ACLs naming its topics"
    )
    if args.delete_topics:
        admin = TopicAdmin(bootstrap)
        doomed = [topic for topic in admin.existing_topics() if topic.startswith(names.tenant_prefix(args.name))]
        admin.delete(doomed)
        print(f"deleted {len(doomed)} topics: {' '.join(sorted(doomed))}")
    return 0


def _acls(args: argparse.Namespace) -> int:
    names = TopicNames(args.namespace)
    validate_tenant_name(args.name)
    print(
        f"# tenant {args.name}: principal User:{tenant_principal(names, args.name)} (SCRAM-SHA-512) and muse's "
        "principals' rights on its topics"
    )
    print(format_kafka_acls(tenant_acls(names, args.name), args.bootstrap_server, args.command_config), end="")
    print(f"# once per namespace {names.namespace!r}: muse's principals on its internal topics, groups and transactions")
    print(format_kafka_acls(namespace_acls(names), args.bootstrap_server, args.command_config), end="")
    return 0


def _quota(args: argparse.Namespace) -> int:
    from muse_stream.clients.security import set_quota

    names = TopicNames(args.namespace)
    validate_tenant_name(args.name)
    quota = _quota_of(args)
    if quota is None:
        raise MuseError("give --produce-byte-rate and/or --request-percentage")
    set_quota(_require_secure("quota"), tenant_principal(names, args.name), quota)
    print(f"{args.name}\tquota={quota.describe()}")
    return 0
