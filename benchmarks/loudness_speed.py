"""Loudness normalisation speed and memory: the streamed normaliser against the whole-array one it replaced.

    .venv/bin/python benchmarks/loudness_speed.py [--seconds 10 60]

For each length, real speech (the committed English fixtures repeated) is written as a 16 kHz
WAV and normalised to -14 LUFS twice, each in a fresh subprocess:
- streamed: `sonic_model.loudness.normalise_loudness` (the render's path: decode, resample a
  chunk at a time, measure, limit, write the 48 kHz stereo float WAV a block at a time);
- whole array: the version before issue 13 (`tests/loudness_reference.py`) on the decoded
  48 kHz stereo script, then the same WAV written at once.
It prints wall seconds (real-time factor), the tracemalloc peak of the normalisation in a
second, traced run (Python-allocated memory: the numpy arrays), and the peak resident memory of
the child.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time, tracemalloc
sys.path.insert(0, {root!r})
import numpy as np, soundfile
from sonic_model import loudness
from tests import loudness_reference as reference
source, out, mode = {source!r}, {out!r}, {mode!r}
loudness.normalise_loudness(source, out)  # imports, caches, filter design: not what is measured


def run():
    if mode == "streamed":
        return loudness.normalise_loudness(source, out).output_lufs
    output, report = reference.normalised_samples(loudness.decode_for_delivery(source), 48000, -14.0)
    soundfile.write(out, output, 48000, subtype="FLOAT")
    return report.output_lufs


started = time.perf_counter()
output_lufs = run()
seconds = time.perf_counter() - started
tracemalloc.start()  # a second run for the memory: tracing slows every allocation down
run()
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"seconds": seconds, "traced_peak_mb": peak / 2**20,
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "output_lufs": round(output_lufs, 2)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.preview_speed import make_speech

    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            source = Path(tmp) / f"speech_{seconds:g}s.wav"
            make_speech(seconds, source)
            for mode in ("streamed", "whole-array"):
                code = CHILD.format(root=str(ROOT), source=str(source), out=str(Path(tmp) / "out.wav"), mode=mode)
                done = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
                )
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                speed = seconds / figures["seconds"]
                print(
                    f"{seconds:5.0f} s  {mode:11s}  {figures['seconds']:6.2f} s ({speed:5.1f}x real time)"
                    f"  traced peak {figures['traced_peak_mb']:7.1f} MB  RSS peak {figures['rss_peak_mb']:6.0f} MB"
                    f"  -> {figures['output_lufs']} LUFS",
                    flush=True,
                )


if __name__ == "__main__":
    main()
