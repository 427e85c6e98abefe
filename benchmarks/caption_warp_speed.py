"""The captions' DTW (sonic_model/captions/dtw.py) alone: CPU seconds of one warp against length.

Every alignment takes two to three warps (the timing's, and the script said at the speaker's pace
forwards and backwards), and a row measured against decoys two more a decoy, so the warp is most
of an alignment's time. Frames are random 13-dimensional MFCC-like vectors with every frame
voiced (the time of a warp does not depend on its values); the band is the aligner's (a quarter
of the longer signal, 5-15 s). Best of three, one core (process time; with OPENBLAS_NUM_THREADS=1,
else numpy's second thread's waiting is counted too).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/caption_warp_speed.py [--against REV]

`--against REV` times the same warps with dtw.py as it was at git revision REV too, and prints
each one's mean z-score beside its time: the two must agree (the same path).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sonic_model.captions import dtw
from sonic_model.captions.align import BAND_FRACTION, BAND_MAX_S, BAND_MIN_S
from sonic_model.captions.features import HOP_S

SECONDS = (10, 50, 150)
REPEATS = 3


def dtw_at(revision: str):
    """dtw.py as it was at `revision`, loaded as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:sonic_model/captions/dtw.py"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "dtw_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dtw_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def best_time(module, reference: np.ndarray, query: np.ndarray, half_width: int) -> tuple[float, float]:
    voiced = np.ones(len(reference), bool), np.ones(len(query), bool)
    times = []
    for _ in range(REPEATS):
        started = time.process_time()
        path = module.warp(reference, query, half_width, *voiced)
        times.append(time.process_time() - started)
    return min(times), path.mean_z


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="also time dtw.py as it was at this git revision")
    args = parser.parse_args()
    modules = {"this checkout": dtw}
    if args.against:
        modules[args.against] = dtw_at(args.against)
    rng = np.random.default_rng(0)
    for seconds in SECONDS:
        n = int(seconds / HOP_S)
        m = int(n * 1.1)  # the speech a little slower than the synthetic speech
        half_width = int(np.clip(BAND_FRACTION * m, BAND_MIN_S / HOP_S, BAND_MAX_S / HOP_S))
        reference = rng.standard_normal((n, 13)).astype(np.float32)
        query = rng.standard_normal((m, 13)).astype(np.float32)
        figures = []
        for name, module in modules.items():
            seconds_taken, mean_z = best_time(module, reference, query, half_width)
            figures.append(f"{name} {seconds_taken:.3f} s (mean z {mean_z:.6f})")
        print(f"{seconds} s of speech ({n} x {m} frames, band +-{half_width}): " + "; ".join(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
