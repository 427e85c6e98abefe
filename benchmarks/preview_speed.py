"""Preview generator speed and memory: 10 s and 60 s of speech at 512 px, encode included,
and the whole `render-one` command on a 9 s clip.

    .venv/bin/python benchmarks/preview_speed.py [--portrait tests/fixtures/portrait_hopper.jpg]

Each duration is measured in a fresh subprocess, so peak memory is that render's alone. The
speech is the committed English fixtures repeated to length (real speech with pauses).

Per duration it prints the real-time factor (video seconds per wall second of `render_video`:
face detection, mesh, VAD, acoustic analysis, every frame, H.264/AAC encode, lip-sync and
motion post-processing) twice:
- cold: the first render in a fresh interpreter, counting interpreter start and imports;
- warm: the same render again with a new generator (no cached portrait), as a worker process
  does for every further row once the tflite interpreters are loaded.
and the peak resident memory of the Python process and of ffmpeg over the whole child.

Then it runs `python -m sonic_catalog.cli render-one` on a 9 s clip a few times, as a user
would, and prints the wall time of the whole command (interpreter start, imports, argument
parsing, decoding, rendering, post-processing, the final file) and how much of it was start-up.

`--loudness-target off` measures the generator at the script's level; by default the render
normalises the sound to -14 LUFS first (streamed: benchmarks/loudness_speed.py measures it alone).

Targets (issues 2 and 16): >= 4x real time (warm), the 60 s peak <= 1.2x the 10 s peak, and the
whole `render-one` command >= 2x real time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SPEECH_SOURCES = ["speech_en_16k.wav", "speech_en_pause_16k.wav"]
TARGET_REALTIME = 4.0
TARGET_MEMORY_GROWTH = 1.2
TARGET_COMMAND_REALTIME = 2.0


def make_speech(seconds: float, path: Path) -> None:
    """Real speech of exactly `seconds`: the fixtures one after another, repeated."""
    import numpy as np
    import soundfile

    from sonic_model.audio import load_audio

    clips = [load_audio(FIXTURES / name).samples for name in SPEECH_SOURCES]
    needed = int(seconds * 16_000)
    pieces, total = [], 0
    while total < needed:
        for clip in clips:
            pieces.append(clip)
            total += len(clip)
    soundfile.write(path, np.concatenate(pieces)[:needed], 16_000, subtype="PCM_16")


def measure(portrait: Path, audio: Path, out: Path, started: float, loudness: str = "default") -> dict:
    """A cold render, then the same render warm (call in a fresh interpreter)."""
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    params = RenderParams(min_resolution=512)
    if loudness != "default":  # "off": the script's own level, no normalisation
        params = RenderParams(min_resolution=512, loudness_target=loudness)
    cold = render_video(create_generator("preview"), portrait, audio, out.with_suffix(".cold.mp4"), params)
    cold_finished = time.perf_counter()
    from benchmarks.child_memory import ChildPeakMemory

    sampler = ChildPeakMemory()
    result = render_video(create_generator("preview"), portrait, audio, out, params)
    children = sampler.stop().largest_mb()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "video_s": result.video_duration_s,
        "frames": result.frames,
        "size": f"{result.width}x{result.height}",
        "render_s": result.seconds,
        "cold_video_s": cold.video_duration_s,
        "cold_s": cold_finished - started,
        "peak_python_mb": own,
        "peak_ffmpeg_mb": children,
    }


def run_child(portrait: Path, seconds: float, workdir: Path, loudness: str = "default") -> dict:
    audio = workdir / f"speech_{seconds:g}s.wav"
    make_speech(seconds, audio)
    out = workdir / f"preview_{seconds:g}s.mp4"
    code = (
        f"import sys, time; started = time.perf_counter(); sys.path.insert(0, {str(ROOT)!r}); "
        "import json; from benchmarks.preview_speed import measure; from pathlib import Path; "
        f"print(json.dumps(measure(Path({str(portrait)!r}), Path({str(audio)!r}), Path({str(out)!r}), started, "
        f"{loudness!r})))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def time_render_one(portrait: Path, seconds: float, workdir: Path, runs: int, loudness: str = "default") -> list[dict]:
    """Wall time of the whole `render-one` command, `runs` times, with its own --json figures."""
    import os

    audio = workdir / f"speech_{seconds:g}s_command.wav"
    make_speech(seconds, audio)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    results = []
    for run in range(runs):
        out = workdir / f"render_one_{run}.mp4"
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "sonic_catalog.cli",
                "render-one",
                "--portrait",
                str(portrait),
                "--audio",
                str(audio),
                "--out",
                str(out),
                *(["--loudness-target", loudness] if loudness != "default" else []),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        wall = time.perf_counter() - started
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        results.append({"wall_s": wall, "render_s": figures["seconds"], "audio_s": figures["audio_duration_s"]})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", type=Path, default=FIXTURES / "portrait_hopper.jpg")
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--command-seconds", type=float, default=9.0, help="render-one clip length (0: skip)")
    parser.add_argument("--command-runs", type=int, default=3)
    parser.add_argument(
        "--loudness-target",
        default="default",
        help="'off' measures the generator at the script's level; default: the render default (-14 LUFS)",
    )
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            results[seconds] = figures = run_child(args.portrait, seconds, Path(tmp), args.loudness_target)
            realtime = figures["video_s"] / figures["render_s"]
            print(
                f"{seconds:5.0f} s speech, {figures['size']}: {realtime:5.2f}x real time warm "
                f"(render_video {figures['render_s']:.2f} s, {figures['frames'] / figures['render_s']:.0f} frames/s), "
                f"peak RSS python {figures['peak_python_mb']:.0f} MB, ffmpeg {figures['peak_ffmpeg_mb']:.0f} MB; "
                f"cold (fresh interpreter, imports included): {figures['cold_video_s'] / figures['cold_s']:.2f}x "
                f"({figures['cold_s']:.2f} s)"
            )
        command = []
        if args.command_seconds:
            command = time_render_one(
                args.portrait, args.command_seconds, Path(tmp), args.command_runs, args.loudness_target
            )
    if command:
        walls = sorted(run["wall_s"] for run in command)
        best = min(command, key=lambda run: run["wall_s"])
        median = walls[len(walls) // 2]
        audio_s = best["audio_s"]
        print(
            f"render-one command, {audio_s:.1f} s clip, {len(command)} runs: {audio_s / best['wall_s']:.2f}x real time "
            f"at best ({best['wall_s']:.2f} s wall, of which {best['wall_s'] - best['render_s']:.2f} s before and "
            "after "
            f"render_video), {audio_s / median:.2f}x at the median ({median:.2f} s); "
            f"all walls: {', '.join(f'{wall:.2f}' for wall in walls)} s"
        )
    ok = all(f["video_s"] / f["render_s"] >= TARGET_REALTIME for f in results.values())
    if command:
        ok = ok and command[0]["audio_s"] / median >= TARGET_COMMAND_REALTIME
    if len(results) >= 2:
        short, long = results[min(results)], results[max(results)]
        growth = (long["peak_python_mb"] + long["peak_ffmpeg_mb"]) / (short["peak_python_mb"] + short["peak_ffmpeg_mb"])
        python_growth = long["peak_python_mb"] / short["peak_python_mb"]
        print(
            f"peak memory {max(results):.0f} s / {min(results):.0f} s: {growth:.3f}x (python + ffmpeg), "
            f"{python_growth:.3f}x (python alone); target <= {TARGET_MEMORY_GROWTH}x"
        )
        ok = ok and growth <= TARGET_MEMORY_GROWTH
    print(
        f"targets (>= {TARGET_REALTIME}x real time, memory growth <= {TARGET_MEMORY_GROWTH}x, render-one command "
        f">= {TARGET_COMMAND_REALTIME}x at the median): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
