"""`sonic-catalog` entry point.

Each sub-command lives in its own module under `sonic_catalog/commands/` with two functions:
`add_parser(subparsers)` and `run(args) -> int`. Errors a user can act on
(`SonicCatalogError`) print one line, `error: ...`, and exit 1 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from sonic_model.errors import SonicCatalogError

# Module names under sonic_catalog.commands, in the order `--help` lists them.
COMMANDS = [
    "demo",
    "render_one",
    "calibrate",
    "verify",
    "render",
    "rerun",
    "worker",
    "manifest",
    "validate",
    "parity",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonic-catalog",
        description="Render talking-presenter video catalogs (Sonic, or the CPU preview generator).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"sonic_catalog.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Quiet third-party noise before anything imports them (telemetry off, no hub access).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SonicCatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
