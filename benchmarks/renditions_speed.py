"""Renditions: what the extra sizes cost, and memory against clip length (preview generator).

    .venv/bin/python benchmarks/renditions_speed.py [--portrait tests/fixtures/landscape_offcentre.jpg]

In one fresh interpreter per clip length (so peak memory is that render's alone), after a short
warm-up render (imports, face models, VAD):
- 10 s of speech rendered as `master` only, then as `master + vertical + square + landscape`
  (one generation, four encoders fed in the same pass); both with the default loudness
  normalisation. Prints both walls (and CPU seconds, process + encoders, which a loaded machine does not
  distort) and the extras' cost relative to the master-only wall;
  target (issue 13): the extras cost at most 1.5x the master-only wall;
- 10 s and 60 s with all four: peak resident memory of Python plus every ffmpeg encoder
  (each encoder's own peak, summed); target: the 60 s peak at most 1.2x the 10 s peak
  (memory does not grow with the clip).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ALL = ("master", "vertical", "square", "landscape")
TARGET_EXTRA_COST = 1.5
TARGET_MEMORY_GROWTH = 1.2


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the encoders) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(portrait: Path, audio: Path, warmup_audio: Path, out: Path, speed: bool) -> dict:
    """Render in this interpreter (call in a fresh one); see the module docstring."""
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    render_video(
        create_generator("preview"),
        portrait,
        warmup_audio,
        out.with_suffix(".warmup.mp4"),
        RenderParams(renditions=ALL),
    )
    figures = {}
    if speed:
        started, cpu = time.perf_counter(), cpu_seconds()
        master = render_video(
            create_generator("preview"), portrait, audio, out.with_suffix(".master.mp4"), RenderParams()
        )
        figures["master_s"] = time.perf_counter() - started
        figures["master_cpu_s"] = cpu_seconds() - cpu
        figures["video_s"] = master.video_duration_s
    from benchmarks.child_memory import ChildPeakMemory

    sampler = ChildPeakMemory()
    started, cpu = time.perf_counter(), cpu_seconds()
    result = render_video(create_generator("preview"), portrait, audio, out, RenderParams(renditions=ALL))
    figures["all_s"] = time.perf_counter() - started
    figures["all_cpu_s"] = cpu_seconds() - cpu
    figures["peak_ffmpeg_mb"] = sampler.stop().summed_mb()
    figures["ffmpeg_processes"] = sampler.by_process()
    figures["peak_python_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["frames"] = result.frames
    figures["sizes"] = [f"{result.width}x{result.height}"] + [f"{r['width']}x{r['height']}" for r in result.renditions]
    return figures


def run_child(portrait: Path, seconds: float, workdir: Path, speed: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    from benchmarks.preview_speed import make_speech

    audio, warmup = workdir / f"speech_{seconds:g}s.wav", workdir / "warmup.wav"
    make_speech(seconds, audio)
    make_speech(2.0, warmup)
    out = workdir / f"talk_{seconds:g}s.mp4"
    paths = ", ".join(f"Path({str(path)!r})" for path in (portrait, audio, warmup, out))
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import json; from pathlib import Path; "
        "from benchmarks.renditions_speed import measure; "
        f"print(json.dumps(measure({paths}, {speed!r})))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", type=Path, default=FIXTURES / "landscape_offcentre.jpg")
    parser.add_argument(
        "--long", type=float, default=60.0, help="the long clip's length in seconds (default 60; 0: speed only)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short = run_child(args.portrait, 10.0, Path(tmp), speed=True)
        long = run_child(args.portrait, args.long, Path(tmp), speed=False) if args.long > 0 else None
    extra = (short["all_s"] - short["master_s"]) / short["master_s"]
    print(f"10 s of speech, {short['frames']} frames; sizes {', '.join(short['sizes'])}")
    extra_cpu = (short["all_cpu_s"] - short["master_cpu_s"]) / short["master_cpu_s"]
    print(
        f"  master only:                            {short['master_s']:6.2f} s wall, {short['master_cpu_s']:6.2f} s CPU"
    )
    print(
        f"  master + vertical + square + landscape: {short['all_s']:6.2f} s wall, {short['all_cpu_s']:6.2f} s CPU "
        f"(the extras cost {extra:.2f}x the master-only wall, target <= {TARGET_EXTRA_COST}; {extra_cpu:.2f}x its CPU)"
    )
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if long is None:
        print(
            f"  10 s, all four: peak RSS python {short['peak_python_mb']:.0f} MB + ffmpeg "
            f"{short['peak_ffmpeg_mb']:.0f} MB"
        )
        return 0 if extra <= TARGET_EXTRA_COST else 1
    for label, figures in ((10.0, short), (args.long, long)):
        print(
            f"  {label:4.0f} s, all four: peak RSS python {figures['peak_python_mb']:.0f} MB + ffmpeg "
            f"{figures['peak_ffmpeg_mb']:.0f} MB (sum of the encoders' peaks), {figures['all_s']:.1f} s wall"
        )
        print(f"        ffmpeg processes (output, peak MB): {'; '.join(figures['ffmpeg_processes'])}")
    total = lambda f: f["peak_python_mb"] + f["peak_ffmpeg_mb"]  # noqa: E731
    growth = total(long) / total(short)
    print(f"peak memory {args.long:g} s / 10 s: {growth:.3f}x (target <= {TARGET_MEMORY_GROWTH})")
    ok = extra <= TARGET_EXTRA_COST and growth <= TARGET_MEMORY_GROWTH
    print(f"targets: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
