"""x264 settings for renditions: CPU per frame, quality and still surroundings of each variant.

    .venv/bin/python benchmarks/rendition_x264.py [--seconds 10] [--crf 20 --maxrate 8M]

Renders `--seconds` of speech with the preview generator and the vertical rendition of the
landscape test photo, keeping the exact I420 frames fed to the vertical encoder (1080x1920), then
encodes them with each variant below, one ffmpeg at a time (the best of two runs), and prints:
- CPU ms per frame (user + system of the ffmpeg process, read from the file: no pipe);
- the profile x264 signalled and the bitrate it reached;
- PSNR of the luma against the frames fed;
- the still area (16x16 blocks identical in every frame fed): mean per-pixel range over the
  clip (max - min, grey levels) and mean frame-to-frame change: how still the surroundings stay.
The figures behind the comment at `sonic_model.rendition_writer.RENDITION_X264_PARAMS`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sonic_model.rendition_writer import RENDITION_X264_PARAMS, RENDITION_X264_PRESET  # noqa: E402
from sonic_model.renditions import RENDITIONS  # noqa: E402

CURRENT = RENDITION_X264_PARAMS.replace(":threads=1", "")  # threads set per variant below
VARIANTS = {
    "rendition settings (QP 18, threads=1)": ["-x264-params", RENDITION_X264_PARAMS, "-qp", "18"],
    "CRF 20 under the cap, threads auto (the previous choice)": ["-x264-params", CURRENT],
    "CRF 20 under the cap, threads=1": ["-x264-params", f"{CURRENT}:threads=1"],
    "threads=2": ["-x264-params", f"{CURRENT}:threads=2"],
    "sliced-threads": ["-x264-params", f"{CURRENT}:sliced-threads=1"],
    "no deblock": ["-x264-params", "8x8dct=1"],
    "no 8x8dct": ["-x264-params", "deblock=1,0,0"],
    "bframes=2": ["-x264-params", f"{CURRENT}:bframes=2:b-adapt=0"],
    "rc-lookahead=10 + mbtree": ["-x264-params", f"{CURRENT}:rc-lookahead=10:mbtree=1"],
    "aq-mode=1": ["-x264-params", f"{CURRENT}:aq-mode=1"],
    # The rate control: the renditions' constant quality (CRF) under the cap, or others under it.
    "CRF 18": ["-x264-params", CURRENT, "-crf", "18"],
    "CRF 23": ["-x264-params", CURRENT, "-crf", "23"],
    "average 6 Mb/s (the first choice)": ["-x264-params", CURRENT, "-b:v", "6M"],
    "CBR 6 Mb/s, filler, QP >= 18": ["-x264-params", f"{CURRENT}:filler=1:qpmin=18", "-b:v", "6M", "-minrate", "6M"],
    # Constant QP: no rate control at all (x264 then computes no half-size look-ahead picture per
    # frame), but also no VBV cap (x264 ignores one without a rate control).
    "QP 20 (no cap)": ["-x264-params", f"{CURRENT}:threads=1", "-qp", "20"],
    "QP 22 (no cap)": ["-x264-params", f"{CURRENT}:threads=1", "-qp", "22"],
}


def capture_vertical_frames(seconds: float, workdir: Path) -> tuple[Path, int]:
    """Render with the vertical rendition and keep the I420 frames its encoder was fed."""
    from benchmarks.preview_speed import make_speech
    from sonic_model import encode
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    speech = workdir / "speech.wav"
    make_speech(seconds, speech)
    raw = workdir / "vertical.yuv"
    write = encode.VideoWriter.write
    with raw.open("wb") as kept:

        def keep(writer, frame):
            if writer.input_pix_fmt == "yuv420p":
                kept.write(np.ascontiguousarray(frame).data)
            return write(writer, frame)

        encode.VideoWriter.write = keep
        try:
            portrait = ROOT / "tests" / "fixtures" / "landscape_offcentre.jpg"
            params = RenderParams(renditions=("vertical",))
            result = render_video(create_generator("preview"), portrait, speech, workdir / "talk.mp4", params)
        finally:
            encode.VideoWriter.write = write
    return raw, result.frames


def luma(buffer: bytes, width: int, height: int) -> np.ndarray:
    frame = width * height * 3 // 2
    return np.frombuffer(buffer, np.uint8).reshape(-1, frame)[:, : width * height].reshape(-1, height, width)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--crf", type=int, default=RENDITIONS["vertical"].crf)
    parser.add_argument("--maxrate", default=RENDITIONS["vertical"].max_bitrate)
    parser.add_argument("--only", action="append", help="run only the variants whose name contains this (repeatable)")
    args = parser.parse_args()
    from sonic_model.encode import _doubled, ffmpeg_executable

    width, height = 1080, 1920
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        raw, count = capture_vertical_frames(args.seconds, workdir)
        fed = luma(raw.read_bytes(), width, height)
        changing = (fed != fed[0]).any(axis=0)
        rows, cols = height // 16 * 16, width // 16 * 16  # whole blocks only (1080 = 67.5 x 16)
        blocks = changing[:rows, :cols].reshape(rows // 16, 16, cols // 16, 16).any(axis=(1, 3))
        still = np.zeros((height, width), bool)
        still[:rows, :cols] = ~np.repeat(np.repeat(blocks, 16, 0), 16, 1)
        print(f"{count} vertical frames fed; still area {still.mean() * 100:.0f} % of the picture")
        print(f"preset {RENDITION_X264_PRESET}, CRF {args.crf} unless said, {args.maxrate} cap")
        for name, extra in VARIANTS.items():
            if args.only and not any(part in name for part in args.only):
                continue
            out = workdir / "variant.mp4"
            command = [ffmpeg_executable(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p"]
            command += ["-s", f"{width}x{height}", "-r", "25", "-i", str(raw), "-c:v", "libx264", "-pix_fmt", "yuv420p"]
            command += ["-profile:v", "high", "-preset", RENDITION_X264_PRESET, *extra]
            if "-qp" not in extra:
                command += [] if {"-crf", "-b:v"} & set(extra) else ["-crf", str(args.crf)]
                command += ["-maxrate", args.maxrate, "-bufsize", _doubled(args.maxrate)]
            command += [str(out)]
            best = None
            for _ in range(2):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(command, check=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                best = cpu if best is None else min(best, cpu)
            probe = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=profile,bit_rate"]
            profile, bitrate = (
                subprocess.run([*probe, "-of", "csv=p=0", str(out)], capture_output=True, text=True)
                .stdout.strip()
                .split(",")
            )
            decoded = subprocess.run(
                [ffmpeg_executable(), "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                capture_output=True,
                check=True,
            ).stdout
            made = luma(decoded, width, height)
            psnr = 10 * np.log10(255**2 / ((made.astype(np.float32) - fed) ** 2).mean())
            surroundings = made[:, still].astype(np.int16)
            spread = (surroundings.max(axis=0) - surroundings.min(axis=0)).mean()
            change = np.abs(np.diff(surroundings, axis=0)).mean()
            print(
                f"  {name:34s} {best / count * 1000:5.1f} ms/frame  {profile:20s} {int(bitrate) / 1e6:4.2f} Mb/s  "
                f"PSNR-Y {psnr:5.2f} dB  still area: range {spread:.2f}, frame to frame {change:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
