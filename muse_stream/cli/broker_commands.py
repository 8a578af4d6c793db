"""``muse broker start|stop|status|logs|kill|restart``: the local Kafka, one node or a cluster of three."""

from __future__ import annotations

import argparse
import time

from muse_stream.broker import BrokerStatus
from muse_stream.broker.local import LocalCluster
from muse_stream.errors import MuseError
from muse_stream.security.acls import ADMIN, SERVICE_PRINCIPALS


def register(subparsers: argparse._SubParsersAction) -> None:
    broker = subparsers.add_parser("broker", help="run a local Apache Kafka (KRaft) on 127.0.0.1")
    actions = broker.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start the broker, or a cluster with --nodes 3 (idempotent)")
    start.add_argument(
        "--nodes",
        type=int,
        choices=(1, 3),
        default=None,
        help="1: one node; 3: three combined broker+controller nodes, replication factor 3 and "
        "min.insync.replicas=2 (default: what this home ran last, else 1)",
    )
    start.add_argument(
        "--secure",
        action="store_true",
        help="SASL/SCRAM-SHA-512 and ACLs, one node only (decided when the storage is first formatted; see README, "
        "Tenant isolation)",
    )
    start.add_argument("--tls", action="store_true", help="with --secure: SASL_SSL, with a CA made locally by openssl")
    start.set_defaults(handler=_start)
    actions.add_parser("stop", help="stop every node this machine's muse started").set_defaults(handler=_stop)
    actions.add_parser("status", help="each node: running, stopped, or dead with a stale pid file").set_defaults(handler=_status)
    logs = actions.add_parser("logs", help="print the last lines of each node's log")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many of the last lines (default: %(default)s)")
    logs.set_defaults(handler=_logs)
    kill = actions.add_parser("kill", help="SIGKILL one node, as a crash would (a fault drill)")
    kill.add_argument("--node", type=int, required=True, help="the node id (1 to the node count)")
    kill.set_defaults(handler=_kill)
    restart = actions.add_parser("restart", help="stop one node (if running) and start it again")
    restart.add_argument("--node", type=int, required=True, help="the node id (1 to the node count)")
    restart.set_defaults(handler=_restart)


def _start(args: argparse.Namespace) -> int:
    if args.tls and not args.secure:
        raise MuseError("--tls goes with --secure: `muse broker start --secure --tls`")
    cluster = LocalCluster.default(args.nodes)
    began = time.monotonic()
    if cluster.start(secure=args.secure, tls=args.tls):
        print(
            f"started Kafka {cluster.members[0].version} ({cluster.nodes} node{'s' if cluster.nodes > 1 else ''}) in "
            f"{time.monotonic() - began:.1f} s; bootstrap {cluster.bootstrap}"
        )
    else:
        print(f"already running; bootstrap {cluster.bootstrap}")
    broker = cluster.members[0]
    if cluster.nodes == 1 and broker.secure:
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
    print("stopped" if LocalCluster.default().stop() else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.default()
    statuses = cluster.status()
    for node in cluster.members:
        status = statuses[node.node_id]
        detail = f" (pid {node.running_pid()}, bootstrap {node.bootstrap})" if status is BrokerStatus.RUNNING else ""
        detail += f", secured (credentials in {node.credentials_dir})" if node.secure else ""
        label = "" if cluster.nodes == 1 else f"node {node.node_id}: "
        print(f"{label}{status.value}{detail}; home {node.home}")
    return 0 if cluster.running() else 3


def _logs(args: argparse.Namespace) -> int:
    print(LocalCluster.default().log_tail(args.lines))
    return 0


def _kill(args: argparse.Namespace) -> int:
    node = LocalCluster.default().node(args.node)
    print(f"node {args.node} killed" if node.kill() else f"node {args.node} was not running")
    return 0


def _restart(args: argparse.Namespace) -> int:
    began = time.monotonic()
    LocalCluster.default().restart_node(args.node)
    print(f"node {args.node} restarted in {time.monotonic() - began:.1f} s")
    return 0
