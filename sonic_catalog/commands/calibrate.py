"""`sonic-catalog calibrate`: re-time an existing talking-head video so its sound meets its mouth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sonic_model.errors import InputError
from sonic_model.postprocess import MAX_AV_OFFSET_MS, calibrate_video


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
        "--av-offset-ms", type=float, default=None, metavar="MS",
        help=f"apply this correction instead of the measured one: delay the sound by MS (negative = advance; at most ±{MAX_AV_OFFSET_MS:g})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.video.is_file():
        raise InputError(f"no such video: {args.video}")
    report = calibrate_video(args.video, args.out, av_offset_ms=args.av_offset_ms)
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    ms_per_frame = 1000.0 / report.fps
    action = (
        "copied unchanged (nothing to correct)" if report.copied_unchanged
        else f"sound shifted by {report.applied_ms:+.0f} ms"
    )
    print(
        f"wrote {report.output_path}: offset before {report.offset_before_frames:+d} frames "
        f"({report.offset_before_frames * ms_per_frame:+.0f} ms, correlation {_fmt(report.correlation_before)}), "
        f"{action}, offset after {report.offset_after_frames:+d} frames "
        f"(correlation {_fmt(report.correlation_after)})"
    )
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
