"""``muse backtest REPLAY_DIR``: alert rates against the reference and label metrics per tenant x
config x period of a replay dataset; prints a table, writes summary.json and report.html."""

from __future__ import annotations

import argparse
from pathlib import Path


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 0.5,0.8") from None
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers strictly between 0 and 1, e.g. 0.5,0.8")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="alert rates and label metrics of a replay dataset per tenant, config and period",
        description="Reads a `muse replay` dataset and reports, per tenant x config x period, the events, the alert "
        "rate at every edge of the reference curve and at the tenant's thresholds with its relative "
        "deviation from the target, and with labels AUC, precision and recall at each threshold and "
        "recall at fixed alert rates. Prints a table; writes summary.json and a self-contained report.html.",
    )
    parser.add_argument("replay_dir", type=Path, metavar="REPLAY_DIR", help="a `muse replay --out` directory")
    parser.add_argument("--period", choices=("hour", "day"), default="day", help="time bucket (default: %(default)s)")
    parser.add_argument(
        "--thresholds",
        type=_fractions,
        default=(),
        metavar="T1,T2",
        help="the tenants' alert thresholds, e.g. 0.5,0.8 (default: the reference curve's edges)",
    )
    parser.add_argument(
        "--alert-rates",
        type=_fractions,
        default=None,
        metavar="R1,R2",
        help="alert rates to give recall at (default: 0.01,0.05,0.1)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for summary.json and report.html (default: REPLAY_DIR/_backtest, which dataset readers skip)",
    )
    parser.add_argument(
        "--plot-tenants",
        type=int,
        default=50,
        metavar="N",
        help="plot only the N tenants whose alert rates deviate most (default: %(default)s; 0: all)",
    )
    parser.add_argument(
        "--walk-forward",
        action="store_true",
        help="instead: the quantile-mapping study's walk-forward (p1, p1_5, p2, custom, default, raw) on the "
        "replay's windows (--period), the first the fit window; needs --old and --new",
    )
    parser.add_argument("--old", metavar="CONFIG", help="with --walk-forward: the replay's config of the old model, e.g. v3")
    parser.add_argument(
        "--new",
        metavar="CONFIG",
        help="with --walk-forward: the replay's config of the new model, e.g. live or a candidate's stem",
    )
    parser.set_defaults(handler=_backtest)


def _backtest(args: argparse.Namespace) -> int:
    import orjson

    from muse_stream.backtest.aggregate import DEFAULT_ALERT_RATES, BacktestSpec, backtest, load_live_scores
    from muse_stream.backtest.report import format_table, html_report, summary

    out = args.out or args.replay_dir / "_backtest"  # "_" prefix: pyarrow.dataset skips it
    if args.walk_forward:
        return _walk_forward(args, out)
    spec = BacktestSpec(period=args.period, thresholds=args.thresholds, alert_rates=args.alert_rates or DEFAULT_ALERT_RATES)
    result = backtest(load_live_scores(args.replay_dir), spec)
    out.mkdir(parents=True, exist_ok=True)
    source = str(args.replay_dir)
    (out / "summary.json").write_bytes(
        orjson.dumps(summary(result, source), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out / "report.html").write_text(html_report(result, source, args.plot_tenants or None), encoding="utf-8")
    print(format_table(result))
    print(f"\nwrote {out / 'summary.json'} and {out / 'report.html'}")
    return 0


def _walk_forward(args: argparse.Namespace, out: Path) -> int:
    import orjson

    from muse_stream.backtest.aggregate import BacktestError
    from muse_stream.backtest.walk_forward import format_walk_forward, load_walk_forward, walk_forward_summary

    if not args.old or not args.new:
        raise BacktestError(
            "--walk-forward compares two of the replay's configs: give --old CONFIG and --new CONFIG (e.g. --old v3 --new live)"
        )
    results = load_walk_forward(args.replay_dir, args.old, args.new, args.period)
    out.mkdir(parents=True, exist_ok=True)
    (out / "walk_forward.json").write_bytes(
        orjson.dumps(walk_forward_summary(results, args.old, args.new), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    print(format_walk_forward(results, args.old, args.new))
    print(f"\nwrote {out / 'walk_forward.json'}")
    return 0
