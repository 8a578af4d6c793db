"""A local certificate authority and the broker's certificate for ``muse broker start --secure --tls``.

Made with the ``openssl`` command once, in the broker's state directory: a CA (kept there, its
certificate handed to clients as ``ssl.ca.location``) and a key and certificate for 127.0.0.1 and
localhost, which the broker reads as a PEM keystore. Nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from muse_stream.broker.kafka_jars import BrokerSetupError
from muse_stream.security.credentials import write_private

DAYS = 825


@dataclass(frozen=True)
class BrokerTls:
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def keystore(self) -> Path:
        """The broker's private key (PKCS#8) followed by its certificate: Kafka's PEM keystore."""
        return self.directory / "broker-keystore.pem"

    def ensure(self) -> BrokerTls:
        if self.ca_file.exists() and self.keystore.exists():
            return self
        openssl = shutil.which("openssl")
        if openssl is None:
            raise BrokerSetupError(
                "--tls needs the openssl command to make a local CA; install openssl "
                "(apt-get install openssl) or start without --tls"
            )
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        san = d / "san.cnf"
        san.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        steps = [
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(d / "ca.key"),
                "-out",
                str(self.ca_file),
                "-days",
                str(DAYS),
                "-subj",
                "/CN=muse-stream local CA",
            ],
            [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(d / "broker.key"),
                "-out",
                str(d / "broker.csr"),
                "-subj",
                "/CN=localhost",
            ],
            [
                "x509",
                "-req",
                "-in",
                str(d / "broker.csr"),
                "-CA",
                str(self.ca_file),
                "-CAkey",
                str(d / "ca.key"),
                "-CAcreateserial",
                "-out",
                str(d / "broker.crt"),
                "-days",
                str(DAYS),
                "-extfile",
                str(san),
            ],
            ["pkcs8", "-topk8", "-nocrypt", "-in", str(d / "broker.key"), "-out", str(d / "broker.p8")],
        ]
        for step in steps:
            result = subprocess.run([openssl, *step], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BrokerSetupError(
                    f"openssl {step[0]} failed making the local CA in {d}: "
                    f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
                )
        write_private(self.keystore, (d / "broker.p8").read_text() + (d / "broker.crt").read_text())
        for secret in ("ca.key", "broker.key", "broker.p8"):
            (d / secret).chmod(0o600)
        return self
