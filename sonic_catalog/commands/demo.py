"""`sonic-catalog demo`: the README's main job on built-in defaults.

Renders the bundled example presenter and script with the preview generator, on any CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic_model.render import RenderParams, get_generator, render_video

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="render the bundled example with the preview generator")
    parser.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where to write (default %(default)s)")
    return parser


def run(args: argparse.Namespace) -> int:
    portrait = EXAMPLES / "media" / "presenter_astronaut.jpg"
    audio = EXAMPLES / "media" / "script_en.wav"
    out = args.out_dir / "presenter_astronaut_en.mp4"
    result = render_video(get_generator("preview"), portrait, audio, out, RenderParams())
    print(f"demo video: {Path(result.output_path).resolve()} ({result.video_duration_s:.2f} s, {result.width}x{result.height}, rendered in {result.seconds:.1f} s)")
    return 0
