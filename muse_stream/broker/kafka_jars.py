"""Resolve Apache Kafka's runtime jars from Maven Central once, then reuse them from the cache.

Why Maven and not a release tarball: this project's machines reach Maven Central but no download
site, and the jars on Maven Central are the same ones Apache ships.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from muse_stream.cache_dir import cache_dir
from muse_stream.errors import MuseError

KAFKA_VERSION = "4.1.1"
_POM_RESOURCE = "kafka-runtime-pom.xml"
_COMPLETE_MARKER = ".complete"
# Measured on a fresh ~/.m2: 43 MB of runtime jars (Kafka 4.1.1, Log4j2) plus Maven's dependency plugin.
DOWNLOAD_SIZE = "~60 MB"


class BrokerSetupError(MuseError):
    """The local broker cannot be set up; the message says what is missing."""


class PortTaken(BrokerSetupError):
    """A port the local broker is to listen on is taken by another process."""


# Kafka's command-line tools (storage format, kafka-configs) run for a second or two: the client
# compiler alone and the serial collector roughly halve their CPU time and wall time against the
# server defaults (C2 and G1 threads that never pay off in so short a run).
TOOL_JVM_OPTIONS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def kafka_libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / f"kafka-{version}" / "libs"


def require_java() -> str:
    """Return the java executable; Kafka 4 brokers need Java 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise BrokerSetupError(
            "java was not found on PATH: the local Kafka broker needs Java 17 or newer "
            "(e.g. `apt-get install openjdk-17-jre-headless`), or set MUSE_BOOTSTRAP to an existing cluster."
        )
    first_line = _version_line(java)
    major = _java_major_version(first_line)
    if major is not None and major < 17:
        raise BrokerSetupError(f"{java} is Java {major} ({first_line.strip()}); Kafka {KAFKA_VERSION} needs Java 17 or newer.")
    return java


@functools.cache
def _version_line(java: str) -> str:
    """`java -version`'s first line, asked once per process: a JVM start costs seconds on a busy
    machine, and each quota command would otherwise pay it twice."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).splitlines()[0] if (result.stderr or result.stdout) else ""


def _java_major_version(version_line: str) -> int | None:
    """Parse `openjdk version "17.0.15"` or `java version "1.8.0_1"` into 17 or 8."""
    if '"' not in version_line:
        return None
    version = version_line.split('"')[1]
    parts = version.split(".")
    try:
        return int(parts[1]) if parts[0] == "1" else int(parts[0])
    except (ValueError, IndexError):
        return None


def ensure_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Return the directory with Kafka's runtime jars, downloading them with Maven the first time."""
    libs = kafka_libs_dir(version)
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerSetupError(
            f"Kafka {version}'s jars are not cached in {libs} and `mvn` was not found on PATH: install "
            "Apache Maven 3.6+ (e.g. `apt-get install maven`) so they can be resolved from Maven Central."
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Maven runs quietly (-q) for a minute or more: say why nothing seems to happen.
    print(
        f"downloading Apache Kafka {version} jars ({DOWNLOAD_SIZE}) from Maven Central into {libs} (first run only)...",
        file=sys.stderr,
        flush=True,
    )
    pom_text = resources.files("muse_stream.broker").joinpath(_POM_RESOURCE).read_text()
    pom_text = pom_text.replace(f"<kafka.version>{KAFKA_VERSION}</kafka.version>", f"<kafka.version>{version}</kafka.version>")
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix="resolve-") as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(pom_text)
        staging = Path(work) / "libs"
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        jars = sorted(staging.glob("*.jar")) if staging.exists() else []
        if result.returncode != 0 or not any(j.name.startswith(f"kafka_2.13-{version}") for j in jars):
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise BrokerSetupError(
                f"resolving org.apache.kafka:kafka_2.13:{version} from Maven Central failed "
                f"(exit {result.returncode}); check network access to Maven Central and ~/.m2/settings.xml.\n{tail}"
            )
        (staging / _COMPLETE_MARKER).write_text(f"{version}\n")
        if libs.exists():
            shutil.rmtree(libs)
        os.replace(staging, libs)
    return libs
