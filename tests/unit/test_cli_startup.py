"""`muse --help`, every command's `--help` and a mistyped command answer at once: building the parser
loads no model, data or Kafka library (each costs a good part of a second to import).

The parser is built in a fresh interpreter: within this test process other tests have loaded them all.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from muse_stream.bench import replay as replay_bench
from muse_stream.bench import stability as stability_bench
from muse_stream.cli import build_parser
from muse_stream.cli.bench_commands import BenchmarkHandler
from muse_stream.cli.options import all_parsers, sub_parsers

HEAVY = (
    "xgboost",
    "scipy",
    "sklearn",
    "numpy",
    "pyarrow",
    "pandas",
    "faust",
    "confluent_kafka",
    "pydantic",
    "prometheus_client",
    "quixstreams",
)

# Every parser's help, then `muse nope` through main(); prints the heavy modules loaded on the way.
PROBE = """
import contextlib, io, sys
from muse_stream.cli import build_parser, main
from muse_stream.cli.options import all_parsers

for parser in all_parsers(build_parser()):
    parser.format_help()
with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.suppress(SystemExit):
    main(["nope"])
assert "invalid choice: 'nope'" in err.getvalue(), err.getvalue()
print(*[m for m in %r if m in sys.modules])
"""


def test_help_and_errors_load_no_heavy_library() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [], f"building the parser and printing help loads {result.stdout.split()}"


def _child(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(child for child in sub_parsers(parser) if child.prog.split()[-1] == name)


def test_benchmark_handlers_name_a_module_that_runs_it() -> None:
    bench = _child(build_parser(), "bench")
    handlers = [parser.get_default("handler") for parser in all_parsers(bench)][1:]
    assert len(handlers) == 9 and all(isinstance(handler, BenchmarkHandler) for handler in handlers)
    for handler in handlers:
        assert callable(importlib.import_module(handler.module).handle), handler.module


def test_benchmark_descriptions_are_their_modules_docstrings() -> None:
    bench = _child(build_parser(), "bench")
    assert _child(bench, "replay").description == replay_bench.__doc__
    assert _child(bench, "stability").description == stability_bench.__doc__
