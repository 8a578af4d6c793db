"""``muse predictors fit`` and ``muse models register|list``: offline fitting and registration.

``fit`` reads a Parquet file of features (scored through a registered model, ``--model NAME:VERSION``,
or an artifact file, ``--artifact PATH``, which is registered on the way) or of scores
(``--score-column``), posterior-corrects with ``b``, fits the quantile map onto the declared
reference and prints the knots and the alert rates they reproduce at the reference's edges.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from muse_stream.cli.options import add_namespace_option, duration
from muse_stream.defaults import DEFAULT_N_KNOTS, DEFAULT_RATE_TOLERANCE
from muse_stream.errors import MuseError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from muse_stream.config.deployment import DeploymentConfig, RouteConfig
    from muse_stream.models import ModelRecord, ModelRegistry
    from muse_stream.predictors.fitting import EdgeRate
    from muse_stream.transforms import QuantileMap, Reference

DEFAULT_STORE = os.environ.get("MUSE_STORE", ".muse/artifacts")
# A map's upper tail (5% at the default curve's 0.8 edge) needs a few hundred events above it.
DEFAULT_MIN_SHADOW_EVENTS = 5000


def _read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise MuseError(f"cannot read Parquet file {path}: {error}") from error
    if columns is not None:
        absent = [c for c in columns if c not in schema.names]
        if absent:
            raise MuseError(f"Parquet file {path} has no column {absent[0]!r} (it has: {', '.join(schema.names[:12])})")
    return pq.read_table(path, columns=columns)


def _column(table: pa.Table, name: str, dtype: pa.DataType) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.cast(table.column(name), dtype).to_numpy(zero_copy_only=False)


def _names(names: list[str] | tuple[str, ...], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def feature_matrix(path: str, feature_names: tuple[str, ...], policy: str) -> np.ndarray:
    """Columns in the model's order. Every feature needs a column: a fit on a file lacking some
    would map a score distribution the live events never have (a column of nulls says "always missing")."""
    import numpy as np
    import pyarrow as pa

    from muse_stream.predictors.predictor import MissingFeatureError

    table = _read_table(path)
    absent = [name for name in feature_names if name not in table.column_names]
    if absent:
        raise MissingFeatureError(
            f"Parquet file {path} lacks {len(absent)} of the model's {len(feature_names)} feature columns: {_names(absent)}; "
            f"it has: {_names(table.column_names) or 'no columns'}. Fit on features named as the model's "
            "(a column of nulls for a feature that is always missing), or on scores with --score-column"
        )
    matrix = np.full((table.num_rows, len(feature_names)), np.nan, dtype=np.float32)
    for index, name in enumerate(feature_names):
        matrix[:, index] = _column(table, name, pa.float32())
    if policy == "reject" and np.isnan(matrix).any():
        column = int(np.nonzero(np.isnan(matrix))[1][0])
        raise MissingFeatureError(
            f"Parquet file {path}: feature {feature_names[column]!r} has missing values and the policy is reject"
        )
    return matrix


def _reference(args: argparse.Namespace) -> Reference:
    import pyarrow as pa

    from muse_stream.transforms import AlertRateCurve, EmpiricalReference

    if args.reference_parquet:
        table = _read_table(args.reference_parquet, [args.reference_column])
        return EmpiricalReference.from_scores(_column(table, args.reference_column, pa.float64()))
    return AlertRateCurve.parse(args.curve) if args.curve else AlertRateCurve.default()


def _model_record(args: argparse.Namespace, registry: ModelRegistry) -> ModelRecord:
    if args.model:
        record = registry.resolve(args.model)
        if args.b is not None and args.b != record.b:
            raise MuseError(
                f"--b {args.b} disagrees with b={record.b} registered for {record.ref}; drop --b or register a new version"
            )
        return record
    if args.b is None:
        raise MuseError(f"--artifact {args.artifact} needs --b (the fraction of negatives kept in training)")
    name = args.model_name or Path(args.artifact).stem.replace(" ", "-")
    return registry.register(args.artifact, name=name, version=args.model_version, b=args.b)


def _print_fit(qmap: QuantileMap, rates: list[EdgeRate]) -> None:
    print(f"quantile map: {qmap.x.size} knots fitted on {qmap.n_fit} scores, reference {qmap.reference['kind']}")
    pairs = [f"{x:.6g} -> {y:.6g}" for x, y in zip(qmap.x, qmap.y, strict=True)]
    width = max(len(p) for p in pairs) + 2
    for start in range(0, len(pairs), 4):
        print("  " + "".join(p.ljust(width) for p in pairs[start : start + 4]).rstrip())
    print(f"{'edge':>8}{'target alert rate':>20}{'reproduced':>14}{'error':>10}")
    for rate in rates:
        print(f"{rate.edge:>8.4g}{rate.target:>20.4f}{rate.achieved:>14.4f}{rate.error:>+10.4f}")


def _check_rates(qmap: QuantileMap, rates: list[EdgeRate], args: argparse.Namespace) -> None:
    """A map that misses its targets breaks every tenant threshold it serves: say so loudly, and
    write nothing unless --force."""
    from muse_stream.predictors.fitting import missed_rates

    missed = missed_rates(rates, args.tolerance)
    if not missed:
        return
    figures = "; ".join(f"edge {r.edge:.4g} at {r.achieved:.4f} against {r.target:.4f}" for r in missed)
    _refuse_unless_forced(
        f"the fitted map misses its target alert rates by more than {args.tolerance:.0%} "
        f"({qmap.x.size} knots on {qmap.n_fit} scores): {figures}. Too few distinct scores (a model of few "
        "trees, or a small or degenerate fit sample) cannot be mapped finely; use a larger model or sample",
        args,
        widen="--tolerance widens the check",
    )


def _refuse_unless_forced(message: str, args: argparse.Namespace, *, widen: str) -> None:
    if not args.force:
        raise MuseError(f"{message}; nothing was written (--force writes it anyway, {widen})")
    print(f"WARNING: {message}; writing it anyway (--force)", file=sys.stderr)


def _fit(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from muse_stream.models import ModelRegistry, open_store
    from muse_stream.predictors.fitting import corrected_scores, predictor_spec, reproduced_rates
    from muse_stream.transforms import QuantileMap, posterior_correction

    if args.from_shadow:
        return _fit_from_shadow(args)
    if not args.parquet:
        raise MuseError("say what to fit on: a Parquet file, or --from-shadow PREDICTOR for a shadow's live traffic")
    reference = _reference(args)
    record: ModelRecord | None = None
    if args.score_column:
        if args.model or args.artifact:
            raise MuseError("give either --score-column (a file of scores) or --model/--artifact (a file of features), not both")
        raw = _column(_read_table(args.parquet, [args.score_column]), args.score_column, pa.float64())
        corrected = posterior_correction(raw, 1.0 if args.b is None else args.b)
    elif args.model or args.artifact:
        registry = ModelRegistry(open_store(args.store))
        record = _model_record(args, registry)
        matrix = feature_matrix(args.parquet, record.feature_names, args.missing_policy)
        corrected = corrected_scores(record, registry.store, matrix)
    else:
        raise MuseError("say what to fit on: --model NAME:VERSION or --artifact PATH for features, or --score-column COLUMN")
    qmap = QuantileMap.fit(corrected, reference, n_knots=args.n_knots)
    rates = reproduced_rates(qmap, corrected, reference)
    _print_fit(qmap, rates)
    _check_rates(qmap, rates, args)
    if args.out:
        if record is None:
            text = qmap.to_json()
            Path(args.out).write_text(text + "\n")
        else:
            spec = predictor_spec(
                record,
                qmap,
                name=args.name or record.name,
                version=args.version or record.version,
                missing_policy=args.missing_policy,
            )
            spec.save(args.out)
            print(f"predictor {spec.name}:{spec.version} id {spec.id}")
        print(f"wrote {args.out}")
    return 0


def _shadow_reference(args: argparse.Namespace, config: DeploymentConfig, routes: list[RouteConfig]) -> Reference:
    """--curve/--reference-parquet when given, else the reference of the live predictors the shadow
    stands beside (one and the same for all its routes), so its scores can replace theirs."""
    import orjson

    from muse_stream.predictors.refit import reference_of

    if args.curve or args.reference_parquet:
        return _reference(args)
    references = {
        route.key: reference_of(config.predictor(route.live).spec.quantile_map, owner=f"live predictor {route.live}")
        for route in routes
    }
    described = {key: ref.describe() for key, ref in references.items()}
    if len({orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in described.values()}) > 1:
        raise MuseError(
            f"the routes {args.from_shadow} shadows map onto different references "
            f"({'; '.join(f'{k}: {d}' for k, d in sorted(described.items()))}); fit per tenant with --tenant"
        )
    return next(iter(references.values()))


def _fit_from_shadow(args: argparse.Namespace) -> int:
    """Fit the shadow's map on its corrected scores from live traffic, onto its routes' reference."""
    import numpy as np

    from muse_stream.broker import command_bootstrap
    from muse_stream.clients.recent_scores import read_shadow_scores
    from muse_stream.config.operations import live_config
    from muse_stream.config.publisher import ConfigPublisher
    from muse_stream.predictors.refit import refit_spec
    from muse_stream.topics import TopicNames

    if args.parquet or args.model or args.artifact or args.score_column:
        raise MuseError("--from-shadow fits on the shadow topic: give no Parquet file, --model, --artifact or --score-column")
    if not args.out:
        raise MuseError("--from-shadow needs --out FILE for the new predictor spec")
    bootstrap = command_bootstrap()
    names = TopicNames(args.namespace)
    config = live_config(ConfigPublisher(bootstrap, names)).config
    declared = {p.name: p for p in config.predictors}
    if args.from_shadow not in declared:
        raise MuseError(
            f"predictor {args.from_shadow} is not in the live config of namespace {names.namespace!r} "
            f"(predictors: {', '.join(sorted(declared)) or 'none'})"
        )
    spec = declared[args.from_shadow].spec
    routes = [r for r in config.routes if args.from_shadow in r.shadows and (not args.tenant or r.tenant in args.tenant)]
    if not routes:
        which = f" of tenant(s) {', '.join(args.tenant)}" if args.tenant else ""
        raise MuseError(
            f"predictor {args.from_shadow} is not a shadow of any route{which} in the live config: "
            "add it as a shadow, let it score live traffic, then fit"
        )
    reference = _shadow_reference(args, config, routes)
    tenants = sorted({r.tenant for r in routes})
    scores = read_shadow_scores(bootstrap, names, spec.id, since_s=args.since, last=args.events, tenants=tenants)
    per_tenant = {tenant: sum(s.tenant == tenant for s in scores) for tenant in tenants}
    window = f"the last {args.since:g} s" if args.since else "all the shadow topic holds"
    print(
        f"{len(scores)} events of shadow {args.from_shadow} ({spec.name}:{spec.version}, id {spec.id[:12]}) "
        f"from {window}{f', the latest {args.events}' if args.events else ''}:"
    )
    for tenant, count in per_tenant.items():
        print(f"  {tenant:<24}{count:>10}")
    if len(scores) < args.min_events:
        _refuse_unless_forced(
            f"{len(scores)} events of shadow {args.from_shadow} on {names.shadow_topic} "
            f"({', '.join(f'{t} {n}' for t, n in per_tenant.items())}) are fewer than --min-events {args.min_events}: "
            "too few to fit a map whose tail holds; let the shadow score longer or widen --since",
            args,
            widen="--min-events lowers the bar",
        )
        if not scores:
            raise MuseError(f"there are no events of shadow {args.from_shadow} on {names.shadow_topic} to fit on")
    fitted, qmap, rates = refit_spec(
        spec, np.array([s.corrected_score for s in scores]), reference, version=args.version, n_knots=args.n_knots
    )
    _print_fit(qmap, rates)
    _check_rates(qmap, rates, args)
    fitted.save(args.out)
    print(f"predictor {fitted.name}:{fitted.version} id {fitted.id} (was {spec.version}, id {spec.id[:12]})")
    print(f"wrote {args.out}")
    return 0


def _register_model(args: argparse.Namespace) -> int:
    from muse_stream.models import ModelRegistry, open_store

    names = tuple(args.feature_names.split(",")) if args.feature_names else None
    record = ModelRegistry(open_store(args.store)).register(
        args.artifact, name=args.name, version=args.version, b=args.b, feature_names=names
    )
    print(f"registered {record.ref} sha256 {record.sha256} ({record.format}, b={record.b}, {len(record.feature_names)} features)")
    return 0


def _list_models(args: argparse.Namespace) -> int:
    from muse_stream.models import ModelRegistry, open_store

    for record in ModelRegistry(open_store(args.store)).records():
        print(f"{record.ref:<30} {record.sha256[:16]}  {record.format:<4} b={record.b:<8g} {record.created_at:%Y-%m-%d %H:%M}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    predictors = subparsers.add_parser("predictors", help="fit and inspect predictors")
    sub = predictors.add_subparsers(dest="predictors_command", required=True, metavar="ACTION")
    fit = sub.add_parser("fit", help="fit a predictor's quantile map from a Parquet file")
    fit.add_argument(
        "parquet",
        nargs="?",
        help="Parquet file of features (with --model/--artifact) or scores (--score-column); none with --from-shadow",
    )
    add_namespace_option(fit)
    fit.add_argument(
        "--from-shadow",
        metavar="PREDICTOR",
        help="fit this shadow predictor of the live config on its corrected scores from the shadow topic",
    )
    fit.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="with --from-shadow: the shadow's scores of the last DURATION (e.g. 30m; default: all the topic holds)",
    )
    fit.add_argument("--events", type=int, metavar="N", help="with --from-shadow: the latest N of them")
    fit.add_argument(
        "--tenant",
        action="append",
        metavar="TENANT",
        help="with --from-shadow: only this tenant's traffic (repeat for more; default: every route it shadows)",
    )
    fit.add_argument(
        "--min-events",
        type=int,
        default=DEFAULT_MIN_SHADOW_EVENTS,
        metavar="N",
        help="with --from-shadow: refuse to fit on fewer events, unless --force (default: %(default)s)",
    )
    source = fit.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="NAME:VERSION", help="a registered model")
    source.add_argument("--artifact", metavar="PATH", help="an XGBoost JSON/UBJ file (registered on the way)")
    fit.add_argument("--model-name", help="registry name for --artifact (default: the file's stem)")
    fit.add_argument("--model-version", default="1", help="registry version for --artifact (default: 1)")
    fit.add_argument("--b", type=float, help="fraction of negatives kept in training (default: the model's; 1 for scores)")
    fit.add_argument("--score-column", metavar="COLUMN", help="fit on this column of model scores instead of features")
    fit.add_argument(
        "--curve", metavar="EDGE:RATE,...", help="target alert-rate curve (default 0.2:0.70,0.5:0.35,0.6:0.10,0.8:0.05)"
    )
    fit.add_argument("--reference-parquet", metavar="FILE", help="map onto the scores in this file instead of a curve")
    fit.add_argument("--reference-column", default="score", help="column of --reference-parquet (default: score)")
    fit.add_argument(
        "--n-knots",
        type=int,
        default=DEFAULT_N_KNOTS,
        help="knots of the quantile map's body, before the extra upper-tail knots (default: %(default)s)",
    )
    fit.add_argument(
        "--missing-policy",
        choices=["xgboost_missing", "reject"],
        default="xgboost_missing",
        help="a missing feature goes to XGBoost as missing, or the event is rejected (default: %(default)s)",
    )
    fit.add_argument("--name", help="predictor name (default: the model's)")
    fit.add_argument(
        "--version",
        help="predictor version (default: the model's version; with --from-shadow the shadow's plus -fitN, e.g. 2 -> 2-fit1)",
    )
    fit.add_argument("--store", default=DEFAULT_STORE, help=f"artifact store directory or file:// URI (default {DEFAULT_STORE})")
    fit.add_argument("--out", metavar="FILE", help="write the predictor spec (or, for scores, the map) as JSON")
    fit.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_RATE_TOLERANCE,
        metavar="RATE",
        help="largest error of a reproduced alert rate at a reference edge, relative to its target "
        "(default: %(default)s, i.e. within 10%%)",
    )
    fit.add_argument(
        "--force",
        action="store_true",
        help="write the fit even when it misses its target alert rates (or, from a shadow, has too few events)",
    )
    fit.set_defaults(handler=_fit)

    models = subparsers.add_parser("models", help="register and list model artifacts")
    model_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    reg = model_sub.add_parser("register", help="store an XGBoost artifact under NAME and VERSION")
    reg.add_argument("artifact", help="XGBoost model file (JSON or UBJ)")
    reg.add_argument("--name", required=True, help="model name, e.g. card-gbm")
    reg.add_argument("--version", required=True, help="model version, e.g. 2; NAME:VERSION is then its reference")
    reg.add_argument("--b", type=float, required=True, help="fraction of negatives kept in training")
    reg.add_argument("--feature-names", help="comma-separated, for models saved without names")
    reg.add_argument("--store", default=DEFAULT_STORE, help=f"artifact store directory or file:// URI (default {DEFAULT_STORE})")
    reg.set_defaults(handler=_register_model)
    listing = model_sub.add_parser("list", help="registered models")
    listing.add_argument(
        "--store", default=DEFAULT_STORE, help=f"artifact store directory or file:// URI (default {DEFAULT_STORE})"
    )
    listing.set_defaults(handler=_list_models)
