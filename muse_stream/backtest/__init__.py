"""``muse backtest``: what a replay's configs would have done, per tenant, config and period.

Reads a ``muse replay`` dataset (long format, see :mod:`muse_stream.replay`) and reports alert
rates at every edge of the reference curve and at the tenant's thresholds against their targets,
and, where labels are joined, AUC, precision and recall at each threshold and recall at fixed alert
rates. Layout: ``aggregate`` (pure numpy/Arrow: the figures), ``report`` (the terminal table, the
JSON summary and the self-contained HTML report with matplotlib plots); the CLI is
``muse_stream.cli.backtest_commands``.
"""
