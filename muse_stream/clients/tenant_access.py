"""A tenant's access on a secured cluster: its SCRAM credential, its ACLs and its client file.

``muse tenants add/credentials/remove`` in secure mode (the admin's client config names a SASL
login) go through here; the rules themselves come from :mod:`muse_stream.security.acls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from muse_stream.clients.security import SecurityAdmin
from muse_stream.clients.settings import CLIENT_CONFIG_ENV, client_settings
from muse_stream.errors import MuseError
from muse_stream.security.acls import namespace_acls, tenant_acls, tenant_principal
from muse_stream.security.credentials import ScramLogin, write_client_properties
from muse_stream.topics import TopicNames


def secure_mode() -> bool:
    """True when this process's client config logs in with SASL: tenants then get credentials."""
    return "sasl.username" in client_settings().security


def default_credentials_dir() -> Path:
    """Tenants' client files go next to the admin's, in ``tenants/``."""
    settings = client_settings()
    if not settings.security_file:
        raise MuseError(f"no client config to put the tenant's credentials next to; set {CLIENT_CONFIG_ENV} or pass --out FILE")
    return Path(settings.security_file).resolve().parent / "tenants"


def default_credentials_file(names: TopicNames, tenant: str) -> Path:
    return default_credentials_dir() / f"{tenant_principal(names, tenant)}.properties"


def _ca_file() -> Path | None:
    ca = client_settings().security.get("ssl.ca.location")
    return Path(ca) if ca else None


@dataclass(frozen=True)
class TenantAccess:
    principal: str
    credentials_file: Path | None  # None: the credential existed and was kept
    acls: int


def grant_tenant(
    security: SecurityAdmin, names: TopicNames, tenant: str, out: Path | None = None, *, rotate: bool = False
) -> TenantAccess:
    """Create (or, with ``rotate`` or no credential yet, replace) the tenant's credential, write its
    client file and grant its ACLs and muse's principals' ACLs on its topics and the namespace."""
    principal = tenant_principal(names, tenant)
    acls = [*namespace_acls(names), *tenant_acls(names, tenant)]
    security.grant(acls)
    path = None
    if rotate or principal not in security.users():
        password = security.set_password(principal)
        path = write_client_properties(
            out or default_credentials_file(names, tenant), ScramLogin(principal, password, _ca_file())
        )
    return TenantAccess(principal, path, len(tenant_acls(names, tenant)))


def rotate_tenant(security: SecurityAdmin, names: TopicNames, tenant: str, out: Path | None = None) -> Path:
    principal = tenant_principal(names, tenant)
    if principal not in security.users():
        raise MuseError(
            f"tenant {tenant!r} has no credential ({principal}) on {security.bootstrap}; "
            f"create it with `muse tenants add {tenant}`"
        )
    password = security.set_password(principal)
    return write_client_properties(out or default_credentials_file(names, tenant), ScramLogin(principal, password, _ca_file()))


def revoke_tenant(security: SecurityAdmin, names: TopicNames, tenant: str) -> bool:
    """Remove the tenant's credential, its rules and muse's rules on its topics; True if it had a
    credential. Its client file (which no longer logs in) is deleted when it is where muse put it."""
    principal = tenant_principal(names, tenant)
    security.revoke(tenant_acls(names, tenant))
    security.revoke_principal(principal)
    had = security.delete_user(principal)
    try:
        default_credentials_file(names, tenant).unlink(missing_ok=True)
    except MuseError:
        pass
    return had
