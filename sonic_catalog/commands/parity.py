"""`sonic-catalog parity FIXTURE_DIR --out OUT_DIR`: our Sonic against the public one's tensors.

Runs our implementation on a parity fixture (tiny checkpoint, inputs, recorded noise), writes
every stage it computes to OUT_DIR/{stages,frames}.safetensors under the fixture's tensor names,
and prints the per-stage error table. Exit 0 when every stage is within tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("parity", help="check our Sonic implementation against a parity fixture")
    parser.add_argument(
        "fixture_dir", type=Path, help="fixture directory (checkpoints/, inputs/, stages.safetensors, ...)"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="directory for stages.safetensors and frames.safetensors"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    return parser


def run(args: argparse.Namespace) -> int:
    from sonic_model.sonic.parity import format_parity_table, run_parity

    results = run_parity(args.fixture_dir, args.out, threads=args.threads)
    print(format_parity_table(results))
    return 0 if all(result.passed for result in results) else 1
