"""A backtest's three outputs: the terminal table, the JSON summary and a self-contained HTML report.

The HTML has no external assets (an analyst mails it or opens it offline): plots are drawn with
matplotlib's Agg canvas (no display, no pyplot global state) and embedded as base64 PNG data URIs,
styles are inline. Plots: per tenant x config, the alert rate over time at each reference edge
against its target; per tenant, the score histograms and the recall/alert-rate curves of its configs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, PercentFormatter

from muse_stream.backtest.aggregate import HISTOGRAM_BINS, Backtest, GroupFigures, RateFigure


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _dev(value: float | None) -> str:
    return "" if value is None else f"({value:+.0%})"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rows(backtest: Backtest) -> list[GroupFigures]:
    """Every tenant x config's periods followed by its whole-window row."""
    by_pair: dict[tuple[str, str], list[GroupFigures]] = {}
    for group in backtest.periods:
        by_pair.setdefault((group.tenant, group.config), []).append(group)
    out = []
    for total in backtest.totals:
        periods = by_pair.get((total.tenant, total.config), [])
        out.extend(periods)
        if len(periods) != 1:
            out.append(total)
    return out


def _table(header: list[str], rows: Iterable[list[str]], left: int) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [line(header), "-" * len(line(header)), *(line(r) for r in rows)]


def _same_thresholds(backtest: Backtest) -> bool:
    """The tenant's thresholds are all reference edges: their alert rates are already shown."""
    return set(backtest.spec.tenant_thresholds) <= set(backtest.spec.curve.edges)


def format_table(backtest: Backtest) -> str:
    """The terminal table: alert rates at the reference edges (and the tenant's thresholds) with the
    relative deviation from the target; with labels, AUC, precision/recall and recall at fixed rates."""
    spec = backtest.spec
    rows = _rows(backtest)
    lead = ["tenant", "config", spec.period, "events", "scored"]
    base = lambda g: [g.tenant, g.config, g.period, f"{g.events:,}", f"{g.scored:,}"]  # noqa: E731
    rate_cells = lambda figures: [f"{_pct(f.alert_rate)} {_dev(f.deviation)}" for f in figures]  # noqa: E731
    out = [f"alert rate at each reference edge (relative deviation from the target), per {spec.period}:"]
    out += _table(
        lead + [f">={f.threshold:g} ~{f.target:.0%}" for f in backtest.totals[0].edges],
        (base(g) + rate_cells(g.edges) for g in rows),
        3,
    )
    if not _same_thresholds(backtest):
        out += ["", "alert rate at the tenant's thresholds (relative deviation from the reference's rate there):"]
        out += _table(
            lead + [f">={f.threshold:g} ~{f.target:.1%}" for f in backtest.totals[0].thresholds],
            (base(g) + rate_cells(g.thresholds) for g in rows),
            3,
        )
    labelled = [g for g in rows if g.labelled]
    if labelled:
        out += [
            "",
            "with labels (labelled scored events only): AUC, precision/recall at each threshold, recall at fixed alert rates:",
        ]
        header = ["tenant", "config", spec.period, "labelled", "positives", "AUC"]
        header += [f"P/R@{t:g}" for t in spec.tenant_thresholds] + [
            f"R@{float(r):.0%} alerts" for r in labelled[0].recall_at_alert_rate
        ]
        out += _table(
            header,
            (
                [g.tenant, g.config, g.period, f"{g.labelled:,}", f"{g.positives:,}", _num(g.auc)]
                + [f"{_num(f.precision)}/{_num(f.recall)}" for f in g.thresholds]
                + [_num(v) for v in g.recall_at_alert_rate.values()]
                for g in labelled
            ),
            3,
        )
    else:
        out += [
            "",
            "no labels joined in this replay: load them with `muse labels load` and replay again for AUC, precision and recall",
        ]
    return "\n".join(out)


def summary(backtest: Backtest, source: str) -> dict[str, Any]:
    """The JSON summary: the spec, every period's figures and every tenant x config's whole-window figures."""
    spec = backtest.spec
    return {
        "replay": source,
        "period": spec.period,
        "reference_curve": {f"{edge:g}": rate for edge, rate in spec.curve.as_mapping().items()},
        "thresholds": list(spec.tenant_thresholds),
        "alert_rates": list(spec.alert_rates),
        "periods": [asdict(g) for g in backtest.periods],
        "totals": [asdict(g) for g in backtest.totals],
    }


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _when(period: str) -> datetime:
    return datetime.fromisoformat(period).replace(tzinfo=UTC) if len(period) == 10 else datetime.fromisoformat(period)


def alert_rate_plot(tenant: str, config: str, groups: list[GroupFigures]) -> str:
    """Alert rate over time at each reference edge (solid) against its target (dashed)."""
    figure = Figure(figsize=(6.4, 3.4))
    ax = figure.subplots()
    times: list[Any] = [_when(g.period) for g in groups]  # datetimes: matplotlib's units take them, its stubs want numbers
    for i, edge in enumerate(groups[0].edges):
        color = f"C{i}"
        rates: list[Any] = [g.edges[i].alert_rate for g in groups]  # None (no events) is a gap in the line
        ax.plot(times, rates, marker="o", color=color, label=f">= {edge.threshold:g}")
        ax.axhline(edge.target, color=color, linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_yticks([edge.target for edge in groups[0].edges])  # the targets: where the lines should be
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if len(times) <= 12:
        ax.set_xticks(times)
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d" if len(groups[0].period) == 10 else "%m-%d %H:00"))
    ax.set_ylabel("alert rate (dashed: target)")
    ax.set_title(f"{tenant} / {config}: alert rate over time")
    ax.legend(fontsize="small", loc="best")
    ax.grid(True, which="both", alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def histogram_plot(tenant: str, totals: list[GroupFigures]) -> str:
    figure = Figure(figsize=(6.4, 3.4))
    ax = figure.subplots()
    edges = [i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)]
    for group in totals:
        total = sum(group.histogram) or 1
        ax.stairs([c / total for c in group.histogram], edges, label=group.config, linewidth=1.5)
    for edge in totals[0].edges:
        ax.axvline(edge.threshold, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("score (dotted: reference edges)")
    ax.set_ylabel("fraction of events")
    ax.set_title(f"{tenant}: score histogram")
    ax.legend(fontsize="small")
    return _png(figure)


def recall_plot(tenant: str, totals: list[GroupFigures]) -> str:
    figure = Figure(figsize=(6.4, 3.4))
    ax = figure.subplots()
    for group in totals:
        if group.recall_curve:
            rates, recalls = zip(*group.recall_curve, strict=True)
            ax.plot(rates, recalls, marker=".", label=f"{group.config} (AUC {_num(group.auc)})")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_xlabel("alert rate (top share of labelled events by score)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{tenant}: recall against alert rate")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return _png(figure)


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td{white-space:nowrap}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}
th{background:#f3f3f3}.over{color:#b00}.plots{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}
figcaption{font-size:12px;color:#555}h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def _cell(figure: RateFigure) -> str:
    css = ' class="over"' if figure.deviation is not None and abs(figure.deviation) > 0.2 else ""
    return f"<td{css}>{_pct(figure.alert_rate)} {_dev(figure.deviation)}</td>"


def _html_table(backtest: Backtest, groups: list[GroupFigures]) -> str:
    spec = backtest.spec
    head = "".join(f"<th>&ge;{f.threshold:g} (target {f.target:.1%})</th>" for f in groups[0].edges)
    if not _same_thresholds(backtest):
        head += "".join(f"<th>&ge;{f.threshold:g} (tenant, ref {f.target:.1%})</th>" for f in groups[0].thresholds)
    labels = any(g.labelled for g in groups)
    if labels:
        head += "<th>labelled</th><th>AUC</th>" + "".join(f"<th>P/R @{t:g}</th>" for t in spec.tenant_thresholds)
        head += "".join(f"<th>R @{float(r):.0%} alerts</th>" for r in spec.alert_rates)
    rows = []
    for g in groups:
        cells = "".join(_cell(f) for f in g.edges)
        if not _same_thresholds(backtest):
            cells += "".join(_cell(f) for f in g.thresholds)
        if labels:
            cells += f"<td>{g.labelled:,}</td><td>{_num(g.auc)}</td>" + "".join(
                f"<td>{_num(f.precision)}/{_num(f.recall)}</td>" for f in g.thresholds
            )
            cells += "".join(f"<td>{_num(v)}</td>" for v in g.recall_at_alert_rate.values())
        rows.append(f"<tr><td>{html.escape(g.config)}</td><td>{html.escape(g.period)}</td><td>{g.events:,}</td>{cells}</tr>")
    return f"<table><tr><th>config</th><th>{spec.period}</th><th>events</th>{head}</tr>" + "".join(rows) + "</table>"


DEFAULT_PLOTTED_TENANTS = 50


def worst_deviation(totals: list[GroupFigures]) -> float:
    """The largest |relative deviation| at any edge of any of a tenant's configs over the window."""
    return max((abs(f.deviation) for t in totals for f in t.edges if f.deviation is not None), default=0.0)


def html_report(backtest: Backtest, source: str, plotted_tenants: int | None = DEFAULT_PLOTTED_TENANTS) -> str:
    """The self-contained HTML report: per tenant a table and its plots. Plots only for the
    ``plotted_tenants`` tenants whose alert rates deviate most (None: all): each plot takes a
    fraction of a second and ~20 KB, too much for 500 tenants' worth; every tenant keeps its table."""
    spec = backtest.spec
    curve = ", ".join(f"{rate:.0%} at &ge;{edge:g}" for edge, rate in spec.curve.as_mapping().items())
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>muse backtest: {html.escape(source)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>Backtest of {html.escape(source)}</h1>"
        f"<p>Per tenant, config and {spec.period}: the alert rate at each edge of the reference curve ({curve}) and the "
        "relative deviation from its target (red: more than 20% off). Thresholds: "
        f"{', '.join(f'{t:g}' for t in spec.tenant_thresholds)}.</p>"
    ]
    periods: dict[tuple[str, str], list[GroupFigures]] = {}
    for group in backtest.periods:
        periods.setdefault((group.tenant, group.config), []).append(group)
    tenants: dict[str, list[GroupFigures]] = {}
    for total in backtest.totals:
        tenants.setdefault(total.tenant, []).append(total)
    ranked = sorted(tenants, key=lambda t: -worst_deviation(tenants[t]))
    plotted = set(ranked if plotted_tenants is None else ranked[:plotted_tenants])
    if len(plotted) < len(tenants):
        parts.append(
            f"<p>Plots for the {len(plotted)} of {len(tenants)} tenants whose alert rates deviate most from the "
            "targets (<code>muse backtest --plot-tenants N</code>, 0 for all); every tenant has its table.</p>"
        )
    for tenant, totals in tenants.items():
        rows = [g for t in totals for g in periods[(tenant, t.config)]] + (
            [] if all(len(periods[(tenant, t.config)]) == 1 for t in totals) else totals
        )
        parts.append(f"<section><h2>{html.escape(tenant)}</h2>{_html_table(backtest, rows)}")
        if tenant not in plotted:
            parts.append("</section>")
            continue
        parts.append("<div class='plots'>")
        for total in totals:
            parts.append(
                _figure(
                    "alert-rate",
                    tenant,
                    total.config,
                    alert_rate_plot(tenant, total.config, periods[(tenant, total.config)]),
                    f"{total.config}: alert rate per {spec.period} against the target",
                )
            )
        parts.append(_figure("histogram", tenant, None, histogram_plot(tenant, totals), "score histograms"))
        if any(t.recall_curve for t in totals):
            parts.append(
                _figure("recall", tenant, None, recall_plot(tenant, totals), "recall against alert rate (labelled events)")
            )
        parts.append("</div></section>")
    parts.append("</body></html>")
    return "".join(parts)


def _figure(kind: str, tenant: str, config: str | None, uri: str, caption: str) -> str:
    config_attr = "" if config is None else f" data-config='{html.escape(config)}'"
    return (
        f"<figure data-plot='{kind}' data-tenant='{html.escape(tenant)}'{config_attr}>"
        f"<img alt='{html.escape(caption)}' src='{uri}'><figcaption>{html.escape(caption)}</figcaption></figure>"
    )
