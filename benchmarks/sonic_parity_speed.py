"""Wall time of the Sonic parity run on the dev fixture (2 torch threads, CPU, float32).

    .venv/bin/python benchmarks/sonic_parity_speed.py [--repeats 3] [--fixture DIR]

Each repeat is a fresh process (imports + weight loading + the full run + writing outputs),
which is what `sonic-catalog parity` costs. The public implementation took ~12 s for the same
run on this kind of machine (the fixture's meta.json `reference_run.timings_seconds.total_s`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sonic_parity_dev"

CHILD = """
import sys, time, torch
torch.set_num_threads(2)
from sonic_model.sonic.parity import run_parity
started = time.perf_counter()
results = run_parity(sys.argv[1], sys.argv[2])
print("RUN_S", time.perf_counter() - started, "PASSED", all(r.passed for r in results))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args()
    walls, runs = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.fixture), out], capture_output=True, text=True, cwd=ROOT
            )
            walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        fields = proc.stdout.split()
        runs.append(float(fields[fields.index("RUN_S") + 1]))
        assert fields[fields.index("PASSED") + 1] == "True", proc.stdout
    reference = json.loads((args.fixture / "meta.json").read_text())["reference_run"]["timings_seconds"]["total_s"]
    print(
        f"parity run, process wall time: median {statistics.median(walls):.2f} s (runs: "
        f"{', '.join(f'{w:.2f}' for w in walls)})"
    )
    print(f"  of which load + run + write (in-process): median {statistics.median(runs):.2f} s")
    print(f"public implementation on the same fixture: {reference:.2f} s")


if __name__ == "__main__":
    main()
