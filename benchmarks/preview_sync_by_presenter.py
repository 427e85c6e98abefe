"""Lip sync of the preview generator per presenter: the example catalog's rows, measured alike.

    nice -n 10 .venv/bin/python benchmarks/preview_sync_by_presenter.py [--rows welcome-fr-astronaut,...]
        [--compare 94e87f6]   # also the generator as it was at that commit: before / after

Renders each example row (`manifests/examples/catalog.csv`, its own parameters) with the
preview generator, no lip-sync calibration, no loudness change, master only, then measures it
with QA's measure (`sonic_model.sync.measure_av_sync` against the row's script): the offset,
the correlation at it, and the mouth opening the face mesh reads back (x IOD) on closed and on
open speech frames. Last, per presenter: the mean correlation and the opening range (the 95th
percentile of the read-back opening during speech minus the 5th).

Issue 23 part 4: the astronaut (an open-mouth smile) measured 0.23-0.41 where Hopper measures
~0.64; its closed frames lost their lips. Run it on the commit before and after a rig change to
compare, or give `--compare REV`: the same rows are then measured first with `sonic_model/` as
it was at REV (`git archive` into a scratch folder, run in a child process), then with this
tree's (docs/preview.md has the figures). ~1 min on 2 cores for the six rows, twice that with
`--compare`.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# `--compare` runs this script again with an older `sonic_model/` first on the path.
CODE_ROOT = Path(os.environ.get("PREVIEW_SYNC_CODE_ROOT", ROOT))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(CODE_ROOT))
EXAMPLES = ROOT / "manifests" / "examples"


def example_rows() -> list[dict]:
    with open(EXAMPLES / "catalog.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def row_params(row: dict):
    from sonic_model.generators import RenderParams

    given = {}
    for name, kind in (("min_resolution", int), ("expand_ratio", float), ("dynamic_scale", float), ("seed", int)):
        if row.get(name):
            given[name] = kind(row[name])
    return RenderParams(lipsync_calibration=False, loudness_target=None, **given)


def presenter_of(row: dict) -> str:
    return Path(row["portrait_uri"]).stem.removeprefix("presenter_")


def measure_row(row: dict, folder: Path) -> dict:
    from sonic_model.audio import load_audio
    from sonic_model.preview import PreviewGenerator
    from sonic_model.render import render_video
    from sonic_model.sync import measure_av_sync

    audio_path = EXAMPLES / row["audio_uri"]
    out = folder / f"{row['row_id']}.mp4"
    started = time.perf_counter()
    render_video(PreviewGenerator(), EXAMPLES / row["portrait_uri"], audio_path, out, row_params(row))
    sync = measure_av_sync(out, load_audio(audio_path))
    speech = sync.speech_mask[: len(sync.mouth_opening)]
    mouth = sync.mouth_opening[: len(speech)][speech]
    mouth = mouth[np.isfinite(mouth)]
    low, high = np.percentile(mouth, [5, 95]) if mouth.size else (float("nan"), float("nan"))
    return {
        "row": row["row_id"],
        "presenter": presenter_of(row),
        "offset": sync.offset_frames,
        "correlation": sync.correlation,
        "closed": float(low),
        "open": float(high),
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", help="comma-separated row ids (default: every example row)")
    parser.add_argument("--keep", type=Path, help="write the videos here (to look at their frames)")
    parser.add_argument("--compare", metavar="REV", help="first measure sonic_model/ as it was at this git revision")
    args = parser.parse_args()
    if args.compare:
        measure_at_revision(args.compare, args.rows)
        print(f"\n=== this tree ({ROOT}) ===")
    rows = example_rows()
    if args.rows:
        wanted = set(args.rows.split(","))
        rows = [row for row in rows if row["row_id"] in wanted]
    from sonic_model.preview import PreviewGenerator

    print(f"preview generator version {PreviewGenerator.version}")
    print(f"{'row':<24} {'presenter':<10} {'offset':>6} {'corr':>6} {'p5 open':>8} {'p95 open':>8} {'s':>5}")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            result = measure_row(row, folder)
            results.append(result)
            print(
                f"{result['row']:<24} {result['presenter']:<10} {result['offset']:>6d} {result['correlation']:>6.3f} "
                f"{result['closed']:>8.3f} {result['open']:>8.3f} {result['seconds']:>5.1f}",
                flush=True,
            )
    by_presenter = defaultdict(list)
    for result in results:
        by_presenter[result["presenter"]].append(result)
    print("\nper presenter: mean sync correlation, mean opening range during speech (p95 - p5, x IOD)")
    for presenter, group in sorted(by_presenter.items()):
        correlation = np.mean([r["correlation"] for r in group])
        spread = np.mean([r["open"] - r["closed"] for r in group])
        print(f"  {presenter:<10} corr {correlation:.3f}  range {spread:.3f}  ({len(group)} rows)")
    return 0


def measure_at_revision(revision: str, rows: str | None) -> None:
    """Run this script in a child process with `sonic_model/` from `revision` first on the path."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "sonic_model"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        print(f"=== sonic_model/ at {revision} ===", flush=True)
        command = [sys.executable, __file__] + (["--rows", rows] if rows else [])
        subprocess.run(command, check=True, env={**os.environ, "PREVIEW_SYNC_CODE_ROOT": scratch})


if __name__ == "__main__":
    sys.exit(main())
