"""``muse monitor``: live per-tenant alert rates, histograms and predictor versions over HTTP (Faust)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_state_dir

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import DEFAULT_LOG_LEVEL, add_namespace_option
from muse_stream.defaults import DEFAULT_BINS
from muse_stream.topics import TopicNames

if TYPE_CHECKING:
    from muse_stream.clients.admin import TopicAdmin


def register(subparsers: argparse._SubParsersAction) -> None:
    monitor = subparsers.add_parser("monitor", help="serve live per-tenant score monitoring (Faust, at-least-once) on 127.0.0.1")
    add_namespace_option(monitor)
    monitor.add_argument("--web-port", type=int, default=6066, help="HTTP port on 127.0.0.1 (default: %(default)s)")
    monitor.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Faust's data directory (default: <MUSE_HOME or user state dir>/monitor/<namespace>)",
    )
    monitor.add_argument("--window", type=float, default=60.0, help="tumbling window, seconds (default: %(default)s)")
    monitor.add_argument("--retention", type=float, default=3600.0, help="windows kept, seconds (default: %(default)s)")
    monitor.add_argument(
        "--rescan", type=float, default=30.0, help="seconds between looks for new tenants' output topics (default: %(default)s)"
    )
    monitor.add_argument("--bins", type=int, default=DEFAULT_BINS, help="score histogram bins (default: %(default)s)")
    monitor.set_defaults(handler=_monitor)


def _default_data_dir(namespace: str) -> Path:
    return Path(os.environ.get("MUSE_HOME") or user_state_dir("muse-stream")) / "monitor" / namespace


def _wait_for_tenants(admin: TopicAdmin, names: TopicNames, rescan_s: float) -> tuple[str, ...]:
    from muse_stream.monitor.app import discover_tenants

    announced = False
    while not (tenants := discover_tenants(admin, names)):
        if not announced:
            print(
                f"no tenant output topics in namespace {names.namespace!r} yet; add one with "
                f"`muse tenants add NAME --namespace {names.namespace}` (looking every {rescan_s:g} s)",
                file=sys.stderr,
                flush=True,
            )
            announced = True
        time.sleep(rescan_s)
    return tenants


def _monitor(args: argparse.Namespace) -> int:
    import faust

    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.monitor.app import MonitorSettings, build_app, faust_topic_specs

    bootstrap = command_bootstrap()
    names = TopicNames(args.namespace)
    settings = MonitorSettings(
        bootstrap=bootstrap,
        data_dir=args.data_dir or _default_data_dir(names.namespace),
        namespace=names.namespace,
        web_port=args.web_port,
        window_s=args.window,
        retention_s=args.retention,
        rescan_s=args.rescan,
        bins=args.bins,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    admin = TopicAdmin(bootstrap)
    tenants = _wait_for_tenants(admin, names, settings.rescan_s)
    app, state = build_app(settings, tenants)
    admin.ensure(faust_topic_specs(app))
    print(
        f"monitoring {len(tenants)} tenant(s) of namespace {names.namespace!r} from {bootstrap}: "
        f"http://127.0.0.1:{settings.web_port}/tenants/",
        flush=True,
    )
    worker = faust.Worker(app, loglevel=(args.log_level or DEFAULT_LOG_LEVEL).upper(), quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline always raises SystemExit
        code = 0
    if state.restart_requested:
        print("restarting to subscribe to new tenants' output topics", flush=True)
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return code
