"""``muse schemas export``: regenerate the JSON Schemas in schemas/ from the pydantic models."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    schemas = subparsers.add_parser("schemas", help="JSON Schemas of events, results and configs")
    actions = schemas.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write schemas/*.schema.json from the pydantic models")
    export.add_argument("--dir", type=Path, default=Path("schemas"), help="where to write them (default: %(default)s)")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from muse_stream.schemas import export

    for path in export(args.dir):
        print(f"wrote {path}")
    return 0
