"""`sonic-catalog demo`: the README's main job on the bundled example manifest.

Renders `manifests/examples/catalog.parquet` (two presenters, five languages) end to end with
the preview generator (any CPU): validation, render, QA, publish, ledger and report, exactly as
`sonic-catalog render` does, then says where the catalog and the report are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="render the bundled example manifest into a catalog (preview generator)"
    )
    parser.add_argument("--catalog", default="out/catalog", help="where to publish (default %(default)s)")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="rows rendered at the same time (default %(default)s)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from sonic_catalog.cli import build_parser

    manifest = EXAMPLES / "catalog.parquet"
    print(f"rendering the example manifest {manifest} into {args.catalog} (preview generator) ...")
    render_args = build_parser().parse_args(
        ["render", str(manifest), "--catalog", str(args.catalog), "--concurrency", str(args.concurrency)]
    )
    code = render_args.handler(render_args)
    print("open the report in a browser to see every row's poster, verdict and lip-sync plot")
    return code
