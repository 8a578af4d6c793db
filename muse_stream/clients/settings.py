"""Kafka client settings in one place, so every producer and consumer agrees on the guarantees.

Every client config is built by :func:`client_config`, which adds what all clients share: where
librdkafka's log lines go (Python ``logging``, never stderr), how long a connection may take to set
up, and the cluster's security settings. The security settings come from one place, a librdkafka
properties file named by ``MUSE_CLIENT_CONFIG`` (``--client-config``); :func:`aiokafka_security`
translates the same file for aiokafka (the Faust monitor). Nothing here imports confluent_kafka.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muse_stream.errors import MuseError
from muse_stream.topics import ARTIFACT_MAX_BYTES, DEAD_LETTER_MAX_BYTES

# librdkafka requires message.timeout.ms <= transaction.timeout.ms; keep a margin.
TRANSACTION_TIMEOUT_MS = 60_000
MESSAGE_TIMEOUT_MS = 50_000

CLIENT_CONFIG_ENV = "MUSE_CLIENT_CONFIG"
CONNECT_TIMEOUT_ENV = "MUSE_CONNECT_TIMEOUT"
# A command that cannot reach its cluster says so within this many seconds (plus start-up).
DEFAULT_CONNECT_TIMEOUT_S = 5.0
# librdkafka refuses a connection set-up timeout under 1 s.
MIN_CONNECT_TIMEOUT_S = 1.0
KAFKA_LOGGER_NAME = "muse_stream.librdkafka"

# What a client properties file may set: how to reach and authenticate to the cluster, nothing
# that would change muse's delivery guarantees (acks, idempotence, isolation level, ...).
SECURITY_KEYS = frozenset({"security.protocol", "enable.ssl.certificate.verification"})
SECURITY_PREFIXES = ("ssl.", "sasl.")
SECURITY_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")


@dataclass(frozen=True)
class ClientSettings:
    """What every client of this process shares, read from the environment (which the CLI's
    global options set, so child processes such as bench workers agree)."""

    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    security: Mapping[str, str] = field(default_factory=dict)
    security_file: str | None = None  # where ``security`` came from, for error messages


class _LibrdkafkaLog:
    """Forwards librdkafka's lines to Python logging at DEBUG (with their own severity in the text):
    muse itself reports what a user must act on, in one line, so these are the detail behind it,
    shown with ``--log-level debug``. confluent-kafka calls ``log(level, fmt, *args)`` on poll."""

    def __init__(self) -> None:
        self._logger = logging.getLogger(KAFKA_LOGGER_NAME)

    def log(self, level: int, msg: str, *args: object) -> None:
        self._logger.debug("%s " + msg, logging.getLevelName(level), *args)


LIBRDKAFKA_LOG = _LibrdkafkaLog()


def parse_client_properties(text: str, source: str) -> dict[str, str]:
    """``key=value`` lines of a librdkafka properties file (``#`` and ``!`` comments, blank lines);
    only security settings are accepted. A bad line is a one-line error naming ``source`` and line."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        where = f"{source}:{number}"
        if not sep or not key:
            raise MuseError(f"{where}: expected key=value, got {line!r}")
        if not (key in SECURITY_KEYS or key.startswith(SECURITY_PREFIXES)):
            raise MuseError(
                f"{where}: {key!r} is not a security setting; a client config file holds only "
                "security.protocol, ssl.* and sasl.* (the bootstrap address goes in MUSE_BOOTSTRAP)"
            )
        if key in settings:
            raise MuseError(f"{where}: {key!r} is set twice; keep one")
        if key == "security.protocol" and value.lower() not in SECURITY_PROTOCOLS:
            raise MuseError(f"{where}: security.protocol={value!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
        settings[key] = value
    return settings


def parse_connect_timeout(text: str, source: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= MIN_CONNECT_TIMEOUT_S or seconds == float("inf"):
        raise MuseError(f"{source}={text!r} is not a number of seconds >= {MIN_CONNECT_TIMEOUT_S:g}")
    return seconds


@functools.lru_cache(maxsize=8)
def _load(security_file: str | None, connect_timeout: str | None) -> ClientSettings:
    seconds = (
        DEFAULT_CONNECT_TIMEOUT_S if connect_timeout is None else parse_connect_timeout(connect_timeout, CONNECT_TIMEOUT_ENV)
    )
    if not security_file:
        return ClientSettings(connect_timeout_s=seconds)
    try:
        text = Path(security_file).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise MuseError(
            f"cannot read the client config file {security_file} ({CLIENT_CONFIG_ENV} / --client-config): "
            f"{getattr(error, 'strerror', None) or error}"
        ) from error
    return ClientSettings(
        connect_timeout_s=seconds, security=parse_client_properties(text, security_file), security_file=security_file
    )


def client_settings() -> ClientSettings:
    """This process's settings, from ``MUSE_CLIENT_CONFIG`` and ``MUSE_CONNECT_TIMEOUT``."""
    return _load(os.environ.get(CLIENT_CONFIG_ENV) or None, os.environ.get(CONNECT_TIMEOUT_ENV) or None)


def client_config(bootstrap: str, config: Mapping[str, Any], *, plaintext: bool = False) -> dict[str, Any]:
    """Every client config goes through here: logs to Python logging, the connect timeout, the
    security settings (``plaintext``: none, for muse's own local broker), then ``config``."""
    settings = client_settings()
    return {
        "bootstrap.servers": bootstrap,
        "logger": LIBRDKAFKA_LOG,
        # librdkafka queues its lines until the client is polled, and an admin client seldom is:
        # have it write none unless they would be shown.
        "log_level": 7 if logging.getLogger(KAFKA_LOGGER_NAME).isEnabledFor(logging.DEBUG) else 0,
        "socket.connection.setup.timeout.ms": int(settings.connect_timeout_s * 1000),
        **({} if plaintext else settings.security),
        **config,
    }


def admin_config(bootstrap: str, *, plaintext: bool = False, **overrides: Any) -> dict[str, Any]:
    return client_config(bootstrap, overrides, plaintext=plaintext)


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer: no duplicates from retries, order kept per partition."""
    return client_config(
        bootstrap,
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "message.max.bytes": DEAD_LETTER_MAX_BYTES,
            **overrides,
        },
    )


def transactional_producer_config(bootstrap: str, transactional_id: str, **overrides: Any) -> dict[str, Any]:
    return producer_config(
        bootstrap,
        **{"transactional.id": transactional_id, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS, **overrides},
    )


def consumer_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that sees only committed records and commits offsets only when told to."""
    return client_config(
        bootstrap,
        {
            "group.id": group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **overrides,
        },
    )


def committed_offsets_reader_config(bootstrap: str, group_id: str) -> dict[str, Any]:
    """A consumer that only asks for a group's committed offsets, answered at once. With
    ``read_committed`` librdkafka sends OffsetFetch with ``require_stable`` (KIP-447) and retries
    while the group has a transaction's offsets pending, which a busy transactional worker has
    nearly always: the call waited up to 1.7 s during a drain. Without it the broker answers with
    the offsets committed so far, which is what lag and progress are about."""
    return consumer_config(bootstrap, group_id, **{"isolation.level": "read_uncommitted"})


# What librdkafka prefetches into a consumer's one queue, shared by all its partitions; it stops
# fetching every partition while the queue holds this much. The worker's queue (the default: 64 MiB
# and 100,000 records) is what a tenant's event waits behind when another tenant floods.
WORKER_PREFETCH_KBYTES = 65536
# With fair shares (pipeline/fairness.py), paused partitions' prefetched records are dropped and
# fetched again: prefetch this many batches, not a hundred thousand records.
FAIR_PREFETCH_BATCHES = 2
# The most one fetch response brings, over all of the worker's partitions (librdkafka's default is
# 50 MiB). librdkafka checks its queue limits before a fetch, not within one, so a worker owning
# hundreds of backlogged tenant partitions took up to 50 MiB at once: its peak RSS was 1.9x one
# tenant's worker, against 1.2x with 8 MiB, and its drain no slower (`muse bench tenants --tenants
# 1,500`, notes/performance.md). 8 MiB is still two batches of 5,000 events of 734 bytes.
WORKER_FETCH_MAX_BYTES = 8 * 1024 * 1024
# Not raised with it: a partition's default 1 MiB keeps every partition of a few tenants within one
# fetch response. At 4 MiB a tenant flooding 4 partitions filled the response, the other tenants'
# partitions were left out of it, and librdkafka fetched nothing more until the worker had taken
# what it brought (tests/integration/test_fairness.py: a quiet tenant waited for 38,300 of the flood's
# events, against at most 6,000).


def worker_prefetch(max_batch: int, *, fair: bool) -> dict[str, int]:
    """The worker consumer's prefetch limits: with ``fair``, about two batches' worth of records."""
    if not fair:
        return {"queued.max.messages.kbytes": WORKER_PREFETCH_KBYTES, "fetch.max.bytes": WORKER_FETCH_MAX_BYTES}
    return {
        "queued.max.messages.kbytes": WORKER_PREFETCH_KBYTES,
        "fetch.max.bytes": WORKER_FETCH_MAX_BYTES,
        "queued.min.messages": FAIR_PREFETCH_BATCHES * max_batch,
        # librdkafka postpones a partition's next fetch this long once the queue is over those
        # limits (default 1 s): every partition's, a quiet tenant's too.
        "fetch.queue.backoff.ms": 10,
    }


def artifact_producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer that may send one model artifact as one (large) record."""
    return producer_config(bootstrap, **{"message.max.bytes": ARTIFACT_MAX_BYTES, "linger.ms": 0, **overrides})


def log_reader_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """A read_committed reader of whole partitions through ``assign()``: it never joins its group
    (librdkafka insists on a group.id, so it gets a unique unused one) and never commits; it signals
    end-of-partition so a reader knows when it has caught up."""
    return consumer_config(
        bootstrap,
        f"muse-log-reader-{uuid.uuid4().hex}",
        # Small fetch waits: these readers either read to the end once or follow a low-volume log
        # whose changes must apply in well under a second. Once its queue is over its prefetch
        # limits, librdkafka waits fetch.queue.backoff.ms (default 1 s) before it fetches again: a
        # reader slower than the broker (a replay) stalled for most of that second each time.
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 20, "fetch.queue.backoff.ms": 10, **overrides},
    )


# librdkafka key -> aiokafka keyword, for what both clients can express.
_AIOKAFKA_PLAIN = {
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
}
_AIOKAFKA_SSL = (
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
)


def aiokafka_security(settings: ClientSettings | None = None) -> dict[str, Any]:
    """The same security settings as keyword arguments of aiokafka's clients (the Faust monitor):
    ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``/``password`` and an
    ``ssl_context`` with the CA file (and client certificate). A setting aiokafka cannot express
    is an error naming it, rather than a monitor that silently connects differently."""
    settings = settings or client_settings()
    security = dict(settings.security)
    source = settings.security_file or CLIENT_CONFIG_ENV
    kwargs: dict[str, Any] = {"security_protocol": security.pop("security.protocol", "plaintext").upper()}
    for key, keyword in _AIOKAFKA_PLAIN.items():
        if key in security:
            kwargs[keyword] = security.pop(key)
    ssl_settings = {key: security.pop(key) for key in _AIOKAFKA_SSL if key in security}
    if security:
        raise MuseError(
            f"{source}: {min(security)!r} has no aiokafka equivalent, so the monitor cannot use it; "
            f"aiokafka takes {', '.join(sorted({*_AIOKAFKA_PLAIN, *_AIOKAFKA_SSL, 'security.protocol'}))}"
        )
    if kwargs["security_protocol"] in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = _ssl_context(ssl_settings, source)
    return kwargs


def _ssl_context(settings: Mapping[str, str], source: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=settings.get("ssl.ca.location"))
        if "ssl.certificate.location" in settings:
            context.load_cert_chain(
                settings["ssl.certificate.location"], settings.get("ssl.key.location"), settings.get("ssl.key.password")
            )
    except (OSError, ssl.SSLError) as error:
        raise MuseError(f"{source}: cannot load the TLS files it names: {error}") from error
    if settings.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if settings.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
