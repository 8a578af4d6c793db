"""SCRAM credentials as client properties files: librdkafka key names, mode 600.

One file per principal, usable as it is by muse (``--client-config``), by kcat (``-F``) and by
confluent-kafka (parse the ``key=value`` lines into the config dict). No Kafka client in here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from muse_stream.security.acls import SCRAM_MECHANISM


def new_password() -> str:
    """192 random bits in URL-safe base64: no quote, comma or bracket to escape in JAAS or --add-scram."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ScramLogin:
    username: str
    password: str
    ca_file: Path | None = None  # set when the listener speaks TLS (SASL_SSL)

    def properties(self) -> dict[str, str]:
        settings = {
            "security.protocol": "SASL_SSL" if self.ca_file else "SASL_PLAINTEXT",
            "sasl.mechanisms": SCRAM_MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }
        if self.ca_file:
            settings["ssl.ca.location"] = str(self.ca_file)
        return settings


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (created 600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path


def write_client_properties(path: Path, login: ScramLogin) -> Path:
    lines = [f"# Kafka client settings of principal {login.username} (librdkafka keys; kcat -F, muse --client-config)"]
    lines += [f"{key}={value}" for key, value in login.properties().items()]
    return write_private(path, "\n".join(lines) + "\n")


def read_login(path: Path) -> ScramLogin:
    """The SCRAM login in a client properties file that :func:`write_client_properties` wrote."""
    from muse_stream.clients.settings import parse_client_properties

    settings = parse_client_properties(path.read_text(), str(path))
    ca = settings.get("ssl.ca.location")
    return ScramLogin(settings["sasl.username"], settings["sasl.password"], Path(ca) if ca else None)
