"""`sonic-catalog render-one`: one portrait + one audio -> one MP4, signed with Content Credentials (C2PA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sonic_model.audio import load_audio
from sonic_model.errors import ParameterError
from sonic_model.generators import RenderParams, create_generator, generator_names
from sonic_model.image import load_image
from sonic_model.presets import PRESET_NAMES
from sonic_model.render import render_video
from sonic_model.renditions import RENDITION_NAMES
from tasks.signing import add_signing_options


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that renders.

    Generation options default to None ("not given"), so a preset (`--preset`) can fill them in
    and an option given explicitly wins over it; the help shows the built-in defaults.
    """
    defaults = RenderParams()
    # Every generator registered when the parser is built: the built-ins, and any that code
    # calling the CLI registered first (tests/dask_stand_ins.py does).
    parser.add_argument(
        "--generator", default="preview", choices=generator_names(), help="default: preview (CPU, no weights)"
    )
    parser.add_argument(
        "--weights", type=Path, help="directory of the downloaded Sonic release (for --generator sonic)"
    )
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default=None,
        help=(
            "named generation settings (steps, resolution, scales, smoothing, renditions); options given explicitly win"
        ),
    )
    parser.add_argument(
        "--min-resolution",
        type=int,
        default=None,
        help=f"short side of the video in px, rounded to a multiple of 64 (default {defaults.min_resolution})",
    )
    parser.add_argument(
        "--expand-ratio",
        type=float,
        default=None,
        help=f"face box expansion on each side (default {defaults.expand_ratio})",
    )
    parser.add_argument(
        "--inference-steps",
        type=int,
        default=None,
        help=f"denoising steps, sonic only (default {defaults.inference_steps})",
    )
    parser.add_argument(
        "--dynamic-scale",
        type=float,
        default=None,
        help=(
            f"motion intensity, 0.5-2.0: preview: mouth; sonic: head-motion buckets (default {defaults.dynamic_scale})"
        ),
    )
    parser.add_argument(
        "--motion-scale",
        type=float,
        default=None,
        help=(
            "0.5-2.0: preview: head/expression motion; sonic: audio-guidance drive of mouth/expression (default "
            f"{defaults.motion_scale})"
        ),
    )
    parser.add_argument("--seed", type=int, default=None, help=f"random seed (default {defaults.seed})")
    parser.add_argument(
        "--no-lipsync-calibration",
        dest="lipsync_calibration",
        action="store_const",
        const=False,
        default=None,
        help="do not measure and cancel the audio-visual offset (on by default)",
    )
    parser.add_argument(
        "--motion-smoothing",
        type=float,
        default=None,
        metavar="S",
        help=f"head-path smoothing, Gaussian sigma in frames, 0 = off, at most 8 (default {defaults.motion_smoothing})",
    )
    parser.add_argument(
        "--av-offset-ms",
        type=float,
        default=None,
        metavar="MS",
        help="manual lip-sync correction: delay the sound by MS (negative = advance); overrides the measured one",
    )
    parser.add_argument(
        "--rendition",
        action="append",
        metavar="NAME",
        choices=RENDITION_NAMES,
        help=(
            "also deliver this size beside the master (repeatable): vertical 1080x1920, square 1080x1080, "
            "landscape 1920x1080"
        ),
    )
    parser.add_argument(
        "--burn-captions",
        dest="burn_captions",
        action="store_const",
        const=True,
        default=None,
        help=(
            "burn each row's captions into its renditions, inside the platforms' safe area (the master keeps a "
            "soft caption track; a manifest's burn_captions column overrides it per row; docs/captions.md)"
        ),
    )
    parser.add_argument(
        "--loudness-target",
        default=None,
        metavar="LUFS",
        help=(
            "normalise every video's sound to this integrated loudness, true peak <= -1 dBTP; 'off' keeps the "
            f"script's level (default {defaults.loudness_target:g})"
        ),
    )


def params_from_args(args: argparse.Namespace) -> RenderParams:
    """The render parameters: built-in defaults < `--preset` < options given explicitly."""
    explicit = {
        "min_resolution": getattr(args, "min_resolution", None),
        "expand_ratio": getattr(args, "expand_ratio", None),
        "inference_steps": getattr(args, "inference_steps", None),
        "dynamic_scale": getattr(args, "dynamic_scale", None),
        "motion_scale": getattr(args, "motion_scale", None),
        "seed": getattr(args, "seed", None),
        "paste_back": True if getattr(args, "paste_back", False) else None,
        "lipsync_calibration": getattr(args, "lipsync_calibration", None),
        "motion_smoothing": getattr(args, "motion_smoothing", None),
        "av_offset_ms": getattr(args, "av_offset_ms", None),
        "renditions": tuple(args.rendition) if getattr(args, "rendition", None) else None,
        "loudness_target": getattr(args, "loudness_target", None),
        "burn_captions": getattr(args, "burn_captions", None),
    }
    return RenderParams.resolve(getattr(args, "preset", None), explicit)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("render-one", help="render one portrait + one audio to an MP4")
    parser.add_argument("--portrait", required=True, type=Path, help="portrait photo (JPEG, PNG, WebP)")
    parser.add_argument("--audio", required=True, type=Path, help="script audio (wav, mp3, m4a, flac, ogg)")
    parser.add_argument("--out", required=True, type=Path, help="output .mp4 path")
    parser.add_argument("--paste-back", action="store_true", help="paste the animated face back into the full photo")
    add_generation_options(parser)
    script = parser.add_mutually_exclusive_group()
    script.add_argument("--script-text", metavar="TEXT", help="what is spoken: captions are aligned from it")
    script.add_argument("--script", type=Path, metavar="FILE", help="the spoken script as a UTF-8 text file")
    parser.add_argument(
        "--language", default="en", help="BCP-47 tag of the script, for captions (default en; docs/captions.md)"
    )
    add_signing_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    return parser


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    script = args.script_text
    if args.script is not None:
        try:
            script = args.script.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParameterError(f"--script {args.script}: cannot read it as UTF-8 text ({exc})") from None
    # Inputs first: a bad file should fail in milliseconds, not after loading model weights.
    portrait = load_image(args.portrait)
    audio = load_audio(args.audio)
    from tasks.signing import material_for_local_command

    material = material_for_local_command(args)  # a bad key fails before the render, not after
    generator = create_generator(args.generator, weights=args.weights)
    result = render_video(generator, portrait, args.audio, args.out, params, audio=audio)
    captions = caption_render(result, args, script, audio, params.burn_captions) if script else None
    credentials = sign_render(result, args, params, material, captions) if material is not None else None
    if args.json:
        print(json.dumps({**result.as_dict(), "credentials": credentials, "captions": captions}))
    else:
        print(
            f"wrote {result.output_path}: {result.frames} frames at {result.fps} fps, "
            f"{result.width}x{result.height}, video {result.video_duration_s:.2f} s / audio "
            f"{result.audio_duration_s:.2f} s, in {result.seconds:.1f} s"
        )
        for rendition in result.renditions:
            print(f"wrote {rendition['path']}: {rendition['name']} {rendition['width']}x{rendition['height']}")
        if result.loudness:
            print(
                f"loudness {result.loudness['output_lufs']:g} LUFS (target {result.loudness['target_lufs']:g}), "
                f"true peak {result.loudness['output_true_peak_dbtp']:g} dBTP"
            )
        if captions:
            print(
                f"captions: {captions['vtt']} and {captions['srt']}, {captions['cues']} cues ({captions['method']}), "
                f"script-vs-audio match {captions['script_match']}"
                + "".join(f"\n  warning: {reason}" for reason in captions["failures"])
            )
            if captions["burned"]:
                print(f"captions burned into: {', '.join(captions['burned'])} ({captions['font']})")
        if params.burn_captions and not captions:
            print("note: --burn-captions without --script-text or --script: no captions to burn in")
        elif params.burn_captions and not result.renditions:
            print("note: --burn-captions without --rendition: captions are burned into renditions only")
        if credentials:
            trust = " (a development certificate: verifiers do not trust it)" if credentials["development"] else ""
            print(
                f"content credentials: signed by {credentials['signer']}{trust}"
                + (f", and each of the {len(result.renditions)} renditions" if result.renditions else "")
            )
    return 0


def caption_render(result, args: argparse.Namespace, script: str, audio, burn: bool = False) -> dict:
    """Captions of the render from its script: <out>.vtt and <out>.srt beside it, and a mov_text
    track in the master and every rendition, or, with `burn`, the captions burned into each
    rendition's picture instead (`sonic_model.captions.burn`). The checks QA would apply are
    printed as warnings."""
    import os

    from sonic_model.audio import speech_segments
    from sonic_model.captions import captions_from, check_captions
    from sonic_model.captions.burn import BurnEncoding, burn_captions
    from sonic_model.captions.track import mux_caption_track
    from sonic_model.rendition_writer import RENDITION_X264_PARAMS, RENDITION_X264_PRESET
    from sonic_model.renditions import RENDITIONS

    captions = captions_from(script, None, args.language, audio.samples, speech_segments(audio))
    out = Path(result.output_path)
    vtt, srt = out.with_suffix(".vtt"), out.with_suffix(".srt")
    vtt.write_text(captions.vtt(), encoding="utf-8")
    srt.write_text(captions.srt(), encoding="utf-8")
    burned, font = [], None
    for rendition in result.renditions if burn else ():
        path, spec = Path(rendition["path"]), RENDITIONS[rendition["name"]]
        drawn = path.with_name(f".{path.stem}.burned.mp4")
        encoding = BurnEncoding(spec.qp, spec.crf, spec.max_bitrate, RENDITION_X264_PRESET, RENDITION_X264_PARAMS)
        font = burn_captions(
            path, captions.cues, args.language, drawn, width=rendition["width"], height=rendition["height"],
            encoding=encoding,
        )  # fmt: skip
        os.replace(drawn, path)
        burned.append(rendition["name"])
    soft = [out] + [Path(r["path"]) for r in result.renditions if r["name"] not in burned]
    for path in soft:
        captioned = path.with_name(f".{path.stem}.captioned.mp4")
        mux_caption_track(path, captions.srt(), args.language, captioned)
        os.replace(captioned, path)
    return {
        "burned": burned,
        "font": font.family if font else None,
        "vtt": str(vtt),
        "srt": str(srt),
        "language": args.language,
        "method": captions.method,
        "script_match": None if captions.script_match is None else round(captions.script_match, 4),
        "cues": len(captions.cues),
        "failures": check_captions(captions),
    }


def sign_render(result, args: argparse.Namespace, params: RenderParams, material, captions: dict | None = None) -> dict:
    """Sign the written video in place (`c2pa.created`, trained algorithmic media), and each of its
    renditions; the master's record, with the renditions' records under "renditions"."""
    from sonic_model.credentials import IngredientHash, creation_manifest
    from sonic_model.digest import sha256_file
    from tasks.signing import sign_file_in_place

    ingredients = [
        IngredientHash.of("portrait", str(args.portrait), sha256_file(args.portrait)),
        IngredientHash.of("script audio", str(args.audio), sha256_file(args.audio)),
    ]
    if captions:
        ingredients.append(IngredientHash.of("captions", captions["vtt"], sha256_file(captions["vtt"])))

    def sign(path: str, facts: dict) -> dict:
        manifest = creation_manifest(
            title=Path(path).name,
            generator=result.generator,
            generator_version=result.generator_version,
            params=params.as_dict(),
            ingredients=ingredients,
            facts={"command": "render-one", **facts},
        )
        return sign_file_in_place(path, manifest, material)

    record = sign(result.output_path, {"rendition": "master"})
    if result.renditions:
        record["renditions"] = {
            rendition["name"]: sign(rendition["path"], {"rendition": rendition["name"]})
            for rendition in result.renditions
        }
    return record
