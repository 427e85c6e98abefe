"""`sonic-catalog manifest from-csv CSV --out OUT.parquet`: write a Parquet manifest from a CSV."""

from __future__ import annotations

import argparse

from manifests.schema import REQUIRED_COLUMNS, manifest_from_csv


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("manifest", help="create manifests (from-csv)")
    actions = parser.add_subparsers(dest="manifest_action", metavar="ACTION", required=True)
    from_csv = actions.add_parser(
        "from-csv",
        help="convert a CSV with the manifest's column names into a Parquet manifest",
        description=f"The CSV's header names the columns; required: {', '.join(REQUIRED_COLUMNS)}. "
        "Empty cells become nulls; relative URIs stay relative (to the Parquet file's folder).",
    )
    from_csv.add_argument("csv", help="CSV file (local path or fsspec URL)")
    from_csv.add_argument("--out", required=True, help="Parquet manifest to write (local path or fsspec URL)")
    return parser


def run(args: argparse.Namespace) -> int:
    rows = manifest_from_csv(args.csv, args.out)
    print(f"wrote {args.out}: {rows} rows; check it with `sonic-catalog validate {args.out}`")
    return 0
