"""Peak resident memory of `sonic-catalog render-one --generator sonic` for 5 s and 60 s of speech.

    .venv/bin/python benchmarks/sonic_memory.py [--steps 3] [--min-resolution 128]

Uses the dev parity fixture's tiny checkpoint (tests/fixtures/sonic_parity_dev/checkpoints) and
its portrait; the speech is the fixture's English sentence tiled to 5 s and 60 s. Each render
runs in a fresh process; its peak RSS (ru_maxrss) is reported. Target: the 60 s run needs at
most 1.2x the 5 s run's peak (decode -> interpolation -> encoder streams; only latents grow).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sonic_parity_dev"

CHILD = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout[-2000:]); sys.stderr.write(proc.stderr[-4000:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(proc.returncode)
"""


def tiled_speech(seconds: float, path: Path) -> Path:
    speech, rate = soundfile.read(FIXTURE / "inputs" / "speech_en_16k.wav", dtype="float32")
    reps = int(np.ceil(seconds * rate / len(speech)))
    soundfile.write(path, np.tile(speech, reps)[: int(seconds * rate)], rate, subtype="PCM_16")
    return path


def render(seconds: float, args, tmp: Path) -> dict:
    audio = tiled_speech(seconds, tmp / f"speech_{seconds:g}s.wav")
    cli = [
        sys.executable, "-c", "import sys; from sonic_catalog.cli import main; sys.exit(main())",
        "render-one", "--generator", "sonic", "--weights", str(FIXTURE / "checkpoints"),
        "--portrait", str(FIXTURE / "inputs" / "astronaut.png"), "--audio", str(audio),
        "--out", str(tmp / f"out_{seconds:g}s.mp4"), "--min-resolution", str(args.min_resolution),
        "--inference-steps", str(args.steps), "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *cli], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"render of {seconds} s failed:\n{proc.stdout}\n{proc.stderr}")
    peak_kb = int(proc.stdout.split("MAXRSS_KB")[-1].split()[0])
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    return {
        "audio_s": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "wall_s": wall,
        "frames": result["frames"],
        "video_s": result["video_duration_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--min-resolution", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [render(seconds, args, Path(tmp)) for seconds in (5.0, 60.0)]
    for run in runs:
        print(
            f"{run['audio_s']:5.1f} s speech: peak RSS {run['peak_rss_mb']:7.1f} MB, {run['frames']} frames "
            f"({run['video_s']:.2f} s video), wall {run['wall_s']:.1f} s"
        )
    ratio = runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    print(f"60 s / 5 s peak RSS ratio: {ratio:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
