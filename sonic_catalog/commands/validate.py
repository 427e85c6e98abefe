"""`sonic-catalog validate MANIFEST`: table checks + media probes only, a verdict per row.

Exit codes: 0 every row is good, 2 some rows are quarantined, 1 the manifest itself is unusable
(printed as one `error: ...` line by the CLI).
"""

from __future__ import annotations

import argparse
import json
import sys

from manifests.schema import read_manifest
from tasks.storage import DEFAULT_ALLOWED_SCHEMES

EXIT_ALL_GOOD = 0
EXIT_SOME_QUARANTINED = 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("validate", help="check a manifest (table + media) without rendering")
    parser.add_argument("manifest", help="Parquet manifest: local path or fsspec URL (s3://, gs://, memory://)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument(
        "--allow-scheme",
        action="append",
        default=None,
        metavar="SCHEME",
        help="URI scheme media may use (repeatable; default: local paths, file, memory, s3, gs)",
    )
    parser.add_argument(
        "--allow-root",
        action="append",
        default=None,
        metavar="URL",
        help="folder/prefix media must lie in (repeatable; default: the manifest's own folder tree)",
    )
    from tasks.limits import add_limit_options

    add_limit_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from tasks.limits import limits_from_args
    from tasks.probe import probe_or_quarantine
    from tasks.records import ProbedRow
    from tasks.table import validate_table

    limits = limits_from_args(args)

    schemes = tuple(args.allow_scheme) if args.allow_scheme else DEFAULT_ALLOWED_SCHEMES
    frame = read_manifest(args.manifest)
    rows, quarantined = validate_table(
        frame, allowed_schemes=schemes, manifest_url=args.manifest, allowed_roots=args.allow_root
    )
    verdicts = [(q.row_id, "quarantined", q.stage, q.reason) for q in quarantined]
    good = []
    for row in rows:
        outcome = probe_or_quarantine(
            row, args.manifest, limits, allowed_schemes=schemes, allowed_roots=args.allow_root
        )
        if isinstance(outcome, ProbedRow):
            good.append(outcome)
            verdicts.append((row.row_id, "ok", "", f"{outcome.audio_duration_s:.2f} s audio, face found"))
        else:
            verdicts.append((outcome.row_id, "quarantined", outcome.stage, outcome.reason))
    order = {row_id: i for i, row_id in enumerate(_labels(frame))}
    verdicts.sort(key=lambda v: order.get(v[0], len(order)))
    bad = sum(1 for v in verdicts if v[1] != "ok")
    if args.json:
        print(
            json.dumps(
                {
                    "manifest": args.manifest,
                    "rows": len(verdicts),
                    "ok": len(verdicts) - bad,
                    "quarantined": bad,
                    "verdicts": [dict(zip(("row_id", "status", "stage", "reason"), v, strict=False)) for v in verdicts],
                },
                ensure_ascii=False,
            )
        )
    else:
        _print_table(verdicts)
        print(f"{len(verdicts) - bad} of {len(verdicts)} rows ok, {bad} quarantined")
    sys.stdout.flush()
    return EXIT_SOME_QUARANTINED if bad else EXIT_ALL_GOOD


def _labels(frame) -> list[str]:
    labels = []
    for position, value in enumerate(frame["row_id"].tolist()):
        labels.append(value if isinstance(value, str) and value.strip() else f"<row {position + 1}>")
    return labels


def _print_table(verdicts: list[tuple[str, str, str, str]]) -> None:
    id_width = min(max([len("row_id")] + [len(v[0]) for v in verdicts]), 40)
    print(f"{'row_id':<{id_width}}  {'status':<11}  {'stage':<8}  detail")
    for row_id, status, stage, reason in verdicts:
        shown = row_id if len(row_id) <= id_width else row_id[: id_width - 3] + "..."
        print(f"{shown:<{id_width}}  {status:<11}  {stage:<8}  {reason}")
