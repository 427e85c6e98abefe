"""`sonic-catalog calibrate`: re-time an existing talking-head video so its sound meets its mouth.

A re-timed file is new bytes, so its Content Credentials are made again here (around
`calibrate_video`, which knows nothing of them): signed as `c2pa.edited`, with the original
file as the parent ingredient (its own credentials, if any, go along as history).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from sonic_model.errors import InputError
from sonic_model.postprocess import MAX_AV_OFFSET_MS, calibrate_video
from tasks.signing import add_signing_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure a talking-head video's audio-visual offset and re-time its sound to cancel it",
        description=(
            "Measures the offset of mouth motion against the speech (positive = picture late), "
            "shifts the sound to cancel it when it is at least one frame and the measurement is "
            "confident (the video stream is copied, never re-encoded), and measures again. "
            "With nothing to correct the file is copied unchanged."
        ),
    )
    parser.add_argument("video", type=Path, metavar="IN.mp4", help="talking-head video with its sound track")
    parser.add_argument("--out", required=True, type=Path, help="output .mp4 path (may equal the input)")
    parser.add_argument(
        "--av-offset-ms",
        type=float,
        default=None,
        metavar="MS",
        help=(
            "apply this correction instead of the measured one: delay the sound by MS (negative = advance; at most "
            f"±{MAX_AV_OFFSET_MS:g})"
        ),
    )
    add_signing_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.video.is_file():
        raise InputError(f"no such video: {args.video}")
    from tasks.signing import material_for_local_command

    material = material_for_local_command(args)
    with tempfile.TemporaryDirectory(prefix="sonic-calibrate-") as scratch:
        original = args.video
        if material is not None and args.out.exists() and args.out.resolve() == args.video.resolve():
            original = Path(scratch) / args.video.name  # the parent ingredient, before it is overwritten
            shutil.copyfile(args.video, original)
        report = calibrate_video(args.video, args.out, av_offset_ms=args.av_offset_ms)
        credentials = None
        if material is not None and not report.copied_unchanged:
            credentials = sign_edit(report, original, material)
    if args.json:
        print(json.dumps({**report.as_dict(), "credentials": credentials}))
        return 0
    ms_per_frame = 1000.0 / report.fps
    action = (
        "copied unchanged (nothing to correct)"
        if report.copied_unchanged
        else f"sound shifted by {report.applied_ms:+.0f} ms"
    )
    print(
        f"wrote {report.output_path}: offset before {report.offset_before_frames:+d} frames "
        f"({report.offset_before_frames * ms_per_frame:+.0f} ms, correlation {_fmt(report.correlation_before)}), "
        f"{action}, offset after {report.offset_after_frames:+d} frames "
        f"(correlation {_fmt(report.correlation_after)})"
    )
    if credentials:
        trust = " (a development certificate: verifiers do not trust it)" if credentials["development"] else ""
        print(f"content credentials: re-signed as an edit of {args.video.name} by {credentials['signer']}{trust}")
    return 0


def sign_edit(report, original: Path, material) -> dict:
    """Sign the re-timed file in place as `c2pa.edited`, `original` its parent; its record."""
    from sonic_model.credentials import edit_manifest
    from tasks.signing import sign_file_in_place

    manifest = edit_manifest(
        title=Path(report.output_path).name,
        software="sonic-catalog calibrate",
        description=f"lip-sync calibration: the sound was shifted by {report.applied_ms:+.0f} ms to meet the mouth; "
        "the picture is unchanged (video stream copied)",
        parameters={
            "av_offset_applied_ms": report.applied_ms,
            "offset_before_frames": report.offset_before_frames,
            "offset_after_frames": report.offset_after_frames,
        },
    )
    return sign_file_in_place(report.output_path, manifest, material, parent=original)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
