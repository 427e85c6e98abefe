"""`sonic-catalog render-one`: one portrait + one audio -> one MP4, signed with Content Credentials (C2PA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sonic_model.audio import load_audio
from sonic_model.generators import RenderParams, create_generator, generator_names
from sonic_model.image import load_image
from sonic_model.render import render_video
from tasks.signing import add_signing_options


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that renders."""
    defaults = RenderParams()
    # Every generator registered when the parser is built: the built-ins, and any that code
    # calling the CLI registered first (tests/dask_stand_ins.py does).
    parser.add_argument("--generator", default="preview", choices=generator_names(),
                        help="default: preview (CPU, no weights)")
    parser.add_argument("--weights", type=Path, help="directory of the downloaded Sonic release (for --generator sonic)")
    parser.add_argument("--min-resolution", type=int, default=defaults.min_resolution, help="short side of the video in px, rounded to a multiple of 64 (default %(default)s)")
    parser.add_argument("--expand-ratio", type=float, default=defaults.expand_ratio, help="face box expansion on each side (default %(default)s)")
    parser.add_argument("--inference-steps", type=int, default=defaults.inference_steps, help="denoising steps, sonic only (default %(default)s)")
    parser.add_argument("--dynamic-scale", type=float, default=defaults.dynamic_scale, help="motion intensity, 0.5-2.0: preview: mouth; sonic: head-motion buckets (default %(default)s)")
    parser.add_argument("--motion-scale", type=float, default=defaults.motion_scale, help="0.5-2.0: preview: head/expression motion; sonic: audio-guidance drive of mouth/expression (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    parser.add_argument("--no-lipsync-calibration", dest="lipsync_calibration", action="store_false", help="do not measure and cancel the audio-visual offset (on by default)")
    parser.add_argument("--motion-smoothing", type=float, default=defaults.motion_smoothing, metavar="S", help="head-path smoothing, Gaussian sigma in frames, 0 = off, at most 8 (default %(default)s)")
    parser.add_argument("--av-offset-ms", type=float, default=None, metavar="MS", help="manual lip-sync correction: delay the sound by MS (negative = advance); overrides the measured one")


def params_from_args(args: argparse.Namespace) -> RenderParams:
    return RenderParams(
        min_resolution=args.min_resolution,
        expand_ratio=args.expand_ratio,
        inference_steps=args.inference_steps,
        dynamic_scale=args.dynamic_scale,
        motion_scale=args.motion_scale,
        seed=args.seed,
        paste_back=getattr(args, "paste_back", False),
        lipsync_calibration=getattr(args, "lipsync_calibration", True),
        motion_smoothing=getattr(args, "motion_smoothing", RenderParams().motion_smoothing),
        av_offset_ms=getattr(args, "av_offset_ms", None),
    ).validated()


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("render-one", help="render one portrait + one audio to an MP4")
    parser.add_argument("--portrait", required=True, type=Path, help="portrait photo (JPEG, PNG, WebP)")
    parser.add_argument("--audio", required=True, type=Path, help="script audio (wav, mp3, m4a, flac, ogg)")
    parser.add_argument("--out", required=True, type=Path, help="output .mp4 path")
    parser.add_argument("--paste-back", action="store_true", help="paste the animated face back into the full photo")
    add_generation_options(parser)
    add_signing_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    return parser


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    # Inputs first: a bad file should fail in milliseconds, not after loading model weights.
    portrait = load_image(args.portrait)
    audio = load_audio(args.audio)
    from tasks.signing import material_for_local_command

    material = material_for_local_command(args)  # a bad key fails before the render, not after
    generator = create_generator(args.generator, weights=args.weights)
    result = render_video(generator, portrait, args.audio, args.out, params, audio=audio)
    credentials = sign_render(result, args, params, material) if material is not None else None
    if args.json:
        print(json.dumps({**result.as_dict(), "credentials": credentials}))
    else:
        print(
            f"wrote {result.output_path}: {result.frames} frames at {result.fps} fps, "
            f"{result.width}x{result.height}, video {result.video_duration_s:.2f} s / audio "
            f"{result.audio_duration_s:.2f} s, in {result.seconds:.1f} s"
        )
        if credentials:
            trust = " (a development certificate: verifiers do not trust it)" if credentials["development"] else ""
            print(f"content credentials: signed by {credentials['signer']}{trust}")
    return 0


def sign_render(result, args: argparse.Namespace, params: RenderParams, material) -> dict:
    """Sign the written video in place (`c2pa.created`, trained algorithmic media); its record."""
    from sonic_model.credentials import IngredientHash, creation_manifest, sha256_file
    from tasks.signing import sign_file_in_place

    manifest = creation_manifest(
        title=Path(result.output_path).name, generator=result.generator, generator_version=result.generator_version,
        params=params.as_dict(),
        ingredients=[IngredientHash.of("portrait", str(args.portrait), sha256_file(args.portrait)),
                     IngredientHash.of("script audio", str(args.audio), sha256_file(args.audio))],
        facts={"command": "render-one"},
    )
    return sign_file_in_place(result.output_path, manifest, material)
