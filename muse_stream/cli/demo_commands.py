"""``muse demo``: the main job on an embedded local broker started for you."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from muse_stream.broker import acquire_broker


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="three tenants, two intents, a model shadowed then promoted mid-stream")
    demo.add_argument(
        "--topology-dir",
        type=Path,
        default=None,
        help="write the demo's topology (its TOML files, trained models and fitted predictors) here "
        "and keep it (default: a temporary directory, removed afterwards)",
    )
    demo.add_argument("--events-per-tenant", type=int, default=4000, help="per phase (default: %(default)s)")
    demo.add_argument(
        "--shadow-budget-ms",
        type=float,
        default=None,
        help="time a shadow predictor may take per batch before it is skipped for a while (default: the worker's)",
    )
    demo.add_argument("--keep-topics", action="store_true", help="keep the demo namespace's topics afterwards")
    demo.add_argument("--keep-broker", action="store_true", help="leave a broker this demo started running")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from muse_stream.demo import closing_line, run_demo

    with acquire_broker(stop_if_started=not args.keep_broker, allow_container=False) as broker:
        print(
            f"broker: Apache Kafka at {broker.bootstrap} ({broker.source}"
            f"{', started for this demo' if broker.started_here else ''})"
        )
        summary = run_demo(
            broker.bootstrap,
            args.topology_dir,
            events_per_tenant=args.events_per_tenant,
            keep_topics=args.keep_topics,
            shadow_budget_ms=args.shadow_budget_ms,
        )
        # Free the demo's Kafka clients (some sit in reference cycles through callbacks) while the
        # broker still runs, so none of them logs connection errors after it stops.
        gc.collect()
        print("\n" + closing_line(summary))
    return 0
