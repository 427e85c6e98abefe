"""Content Credentials cost: signing a video (with the read-back check) vs rendering it.

    .venv/bin/python benchmarks/signing_cost.py [--seconds 10] [--repeats 5]

1. renders 10 s of real speech (the committed fixtures repeated) with the preview generator at
   512 px, twice (the second, warm render is the per-row cost on a worker: imports and models
   already loaded) and times the warm one;
2. signs that video `--repeats` times with a development certificate, as publishing does
   (`sonic_model.credentials.sign_video`: build the manifest, hash the file, sign, write, then
   read the signed file back and validate it), and times the signature and the read-back alone;
3. does the same for a 1080x1920 H.264 file of the same length (the 512 px render scaled up
   by ffmpeg, standing in for a full-HD vertical rendition).

Prints each median, wall and CPU time (CPU time is what a loaded machine distorts least), and its
share of the 512 px render's. Target (issue 15): < 5%.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGET_SHARE = 0.05


def timed(function, repeats: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (this process's threads and its finished children: ffmpeg)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        function()
        wall.append(time.perf_counter() - started)
        cpu.append(_cpu_seconds() - cpu_started)
    return wall, cpu


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--portrait", type=Path, default=ROOT / "tests" / "fixtures" / "portrait_hopper.jpg")
    args = parser.parse_args()

    from preview_speed import make_speech

    from sonic_model.credentials import IngredientHash, creation_manifest, read_credentials, sign_video
    from sonic_model.digest import sha256_file
    from sonic_model.encode import ffmpeg_executable
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.image import load_image
    from sonic_model.render import render_video
    from sonic_model.signing_material import create_development_credentials, split_bundle

    with tempfile.TemporaryDirectory(prefix="signing-cost-") as scratch:
        scratch = Path(scratch)
        speech = scratch / "speech.wav"
        make_speech(args.seconds, speech)
        params = RenderParams(min_resolution=512)
        portrait = load_image(args.portrait)
        video = scratch / "preview-512.mp4"
        render_video(create_generator("preview"), portrait, speech, video, params)  # cold: imports, models
        (render_s,), (render_cpu_s,) = timed(
            lambda: render_video(create_generator("preview"), portrait, speech, video, params), 1
        )

        tall = scratch / "rendition-1080x1920.mp4"
        started = time.perf_counter()
        subprocess.run(
            [
                ffmpeg_executable(),
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(video),
                "-vf",
                "scale=1080:1080,pad=1080:1920:0:420",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "18",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "copy",
                str(tall),
            ],
            check=True,
        )
        tall_encode_s = time.perf_counter() - started

        material = split_bundle(create_development_credentials(label="benchmark"), origin="benchmark", development=True)
        manifest = creation_manifest(
            title="row.mp4",
            generator="preview",
            generator_version="1.0",
            params=params.as_dict(),
            ingredients=[
                IngredientHash.of("portrait", args.portrait.name, sha256_file(args.portrait)),
                IngredientHash.of("script audio", speech.name, sha256_file(speech)),
            ],
            facts={
                "row_id": "benchmark",
                "language": "en",
                "consent_ref": "release/benchmark",
                "content_key": "0" * 64,
            },
        )
        print(f"preview render, {args.seconds:g} s of speech at 512 px (warm): {render_s:.2f} s wall, ", end="")
        print(f"{render_cpu_s:.2f} s CPU")
        print(f"1080x1920 rendition encode (ffmpeg, veryfast): {tall_encode_s:.2f} s")
        worst = 0.0
        for name, source in (("512x512", video), ("1080x1920", tall)):
            signed = scratch / f"signed-{source.name}"
            sign_video(source, signed, manifest, material)  # warm-up: c2pa library load
            sign, sign_cpu = timed(
                lambda source=source, signed=signed: sign_video(source, signed, manifest, material), args.repeats
            )
            read, _ = timed(lambda signed=signed: read_credentials(signed), args.repeats)
            median, median_cpu = statistics.median(sign), statistics.median(sign_cpu)
            worst = max(worst, median / render_s, median_cpu / render_cpu_s)
            size_mb = source.stat().st_size / 1e6
            print(
                f"{name} ({size_mb:.1f} MB): sign + validate {median * 1000:.0f} ms wall / "
                f"{median_cpu * 1000:.0f} ms CPU median (read-back alone {statistics.median(read) * 1000:.0f} ms): "
                f"{median / render_s:.2%} of the "
                f"render's wall time, {median_cpu / render_cpu_s:.2%} of its CPU time; "
                f"+{(signed.stat().st_size - source.stat().st_size) / 1024:.1f} KiB"
            )
        verdict = "meets" if worst < TARGET_SHARE else "MISSES"
        print(f"worst share {worst:.2%}: {verdict} the target of < {TARGET_SHARE:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
