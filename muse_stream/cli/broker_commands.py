"""``muse broker start|stop|status|logs``: the local single-node Kafka."""

from __future__ import annotations

import argparse
import time

from muse_stream.broker import BrokerStatus, LocalBroker
from muse_stream.errors import MuseError
from muse_stream.security.acls import ADMIN, SERVICE_PRINCIPALS


def register(subparsers: argparse._SubParsersAction) -> None:
    broker = subparsers.add_parser("broker", help="run a local Apache Kafka (KRaft) on 127.0.0.1")
    actions = broker.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start the broker (idempotent)")
    start.add_argument(
        "--secure",
        action="store_true",
        help="SASL/SCRAM-SHA-512 and ACLs (decided when the storage is first formatted; see README, Tenant isolation)",
    )
    start.add_argument("--tls", action="store_true", help="with --secure: SASL_SSL, with a CA made locally by openssl")
    start.set_defaults(handler=_start)
    actions.add_parser("stop", help="stop the broker this machine's muse started").set_defaults(handler=_stop)
    actions.add_parser("status", help="running, stopped, or dead with a stale pid file").set_defaults(handler=_status)
    logs = actions.add_parser("logs", help="print the last lines of the broker log")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many of the last lines (default: %(default)s)")
    logs.set_defaults(handler=_logs)


def _start(args: argparse.Namespace) -> int:
    broker = LocalBroker.default()
    if args.tls and not args.secure:
        raise MuseError("--tls goes with --secure: `muse broker start --secure --tls`")
    began = time.monotonic()
    if broker.start(secure=args.secure, tls=args.tls):
        print(f"started Kafka {broker.version} in {time.monotonic() - began:.1f} s; bootstrap {broker.bootstrap}")
    else:
        print(f"already running (pid {broker.running_pid()}); bootstrap {broker.bootstrap}")
    if broker.secure:
        login = broker.admin_login()
        assert login is not None  # a secure broker has an admin login
        print(
            f"secured: SASL/SCRAM-SHA-512{' over TLS' if login.ca_file else ''}, ACLs required. "
            f"Client files (mode 600) in {broker.credentials_dir}:"
        )
        for principal in (ADMIN, *SERVICE_PRINCIPALS):
            print(f"  {principal:14} {broker.credential_file(principal)}")
        print(
            "muse commands use the admin's file unless MUSE_CLIENT_CONFIG / --client-config names another; "
            "grant a namespace's principals with `muse tenants add`."
        )
    return 0


def _stop(args: argparse.Namespace) -> int:
    broker = LocalBroker.default()
    print("stopped" if broker.stop() else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    broker = LocalBroker.default()
    status = broker.status()
    detail = f" (pid {broker.running_pid()}, bootstrap {broker.bootstrap})" if status is BrokerStatus.RUNNING else ""
    detail += f", secured (credentials in {broker.credentials_dir})" if broker.secure else ""
    print(f"{status.value}{detail}; home {broker.home}")
    return 0 if status is BrokerStatus.RUNNING else 3


def _logs(args: argparse.Namespace) -> int:
    print(LocalBroker.default().log_tail(args.lines))
    return 0
