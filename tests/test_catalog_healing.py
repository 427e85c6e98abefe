"""A catalog that heals itself: damaged state files are rebuilt or dropped with one warning, and
every run ends with an index equal to what is published on disk (sidecar + video pairs).

Renders use the preview generator at 256 px (seconds a row)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import CLI
from test_hostile_faults import assert_catalog_consistent, ledger, make_manifest, run_cli, run_id_of


def published_on_disk(catalog: Path) -> set[str]:
    """Videos whose sidecar and video are both there (the catalog's truth)."""
    videos = set()
    for sidecar in catalog.rglob("*.json"):
        relative = sidecar.relative_to(catalog)
        if relative.parts[0].startswith(("_", ".")) or len(relative.parts) == 1:
            continue
        video = json.loads(sidecar.read_text())["video"]
        if (catalog / video).is_file():
            videos.add(video)
    return videos


def mtimes(catalog: Path) -> dict[str, int]:
    """Modification times of every published video and its sidecar (a video without its sidecar
    is not published: a killed run's, which the next run may write again)."""
    found = {}
    for video in published_on_disk(catalog):
        for name in (video, video[: -len(".mp4")] + ".json"):
            found[name] = (catalog / name).stat().st_mtime_ns
    return found


@pytest.mark.slow  # three runs: ~45 s on 2 loaded cores
def test_corrupt_index_and_quarantines_are_rebuilt_with_one_warning_and_nothing_rerendered(tmp_path):
    manifest = make_manifest(tmp_path / "project", ["row-a", "row-b"])
    catalog = tmp_path / "catalog"
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog))
    assert code == 0, out + err
    before = mtimes(catalog)
    index = catalog / "index.parquet"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])  # truncate -s 50%
    quarantines = catalog / "_state" / "quarantines.parquet"
    quarantines.parent.mkdir(exist_ok=True)
    quarantines.write_bytes(b"\x00garbage, not parquet\xff" * 40)

    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog))
    assert code == 0, out + err
    warnings = [line for line in err.splitlines() if line.startswith("warning: catalog state file")]
    assert len(warnings) == 2, err
    assert any(str(index) in w and "rebuilt from the sidecars" in w for w in warnings), warnings
    assert any(str(quarantines) in w and "dropped" in w for w in warnings), warnings
    assert set(ledger(catalog, run_id_of(out)).status) == {"skipped_cached"}
    assert mtimes(catalog) == before  # nothing published was rendered or written again
    assert (
        set(pd.read_parquet(index).video)
        == published_on_disk(catalog)
        == {"faults/en/row-a.mp4", "faults/en/row-b.mp4"}
    )
    pd.read_parquet(quarantines)  # rewritten, readable
    assert_catalog_consistent(catalog)

    # Healed: the next run says nothing (the warnings are said once per process: forget them).
    import tasks.state_files

    tasks.state_files._warned.clear()
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog))
    assert code == 0 and "warning: catalog state file" not in err, out + err


# --- killed runs: `rerun` finds them wherever they were killed, and the index ends equal to the disk ---


def kill_render_when(manifest: Path, catalog: Path, env: dict, ready, timeout: float = 240) -> None:
    """Start `sonic-catalog render` in its own process group; SIGKILL the group once `ready()`."""
    command = CLI + ["render", str(manifest), "--catalog", str(catalog), "--concurrency", "1"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None and not ready():
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed"
        assert ready(), "the run never reached the stage to kill it at"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def run_records(catalog: Path) -> set[Path]:
    return set((catalog / "_runs").glob("*/run.json"))


@pytest.mark.slow  # four killed renders and their reruns: a few minutes on 2 cores
def test_rerun_after_a_kill_at_any_stage_indexes_every_published_video_and_renders_nothing_twice(tmp_path):
    catalog = tmp_path / "catalog"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONWARNINGS": "ignore"}
    sidecars = catalog / "faults" / "en"
    rows: list[str] = []
    # Each night adds rows and is killed at a later stage: right after its run folder appears (before
    # table check and plan), after its first new sidecar, after its last new sidecar (before the index).
    stages = [("run folder", 0), ("run folder", 0), ("first sidecar", 1), ("last sidecar", 2)]
    for night, (stage, sidecars_wanted) in enumerate(stages):
        new = [f"row-{night}-{i}" for i in range(2 if night else 3)]
        rows += new
        manifest = make_manifest(tmp_path / f"night-{night}", rows)
        published_before = mtimes(catalog) if catalog.exists() else {}
        runs_before = run_records(catalog) if catalog.exists() else set()

        def ready(new=new, runs_before=runs_before, stage=stage, wanted=sidecars_wanted):
            if stage == "run folder":
                return bool(run_records(catalog) - runs_before)
            return sum((sidecars / f"{row_id}.json").exists() for row_id in new) >= wanted

        kill_render_when(manifest, catalog, env, ready)
        killed = mtimes(catalog)
        rerun = subprocess.run(
            CLI + ["rerun", "--catalog", str(catalog)], capture_output=True, text=True, env=env, timeout=300
        )
        assert rerun.returncode == 0, f"night {night} ({stage}): {rerun.stdout}{rerun.stderr}"
        assert "no runs found" not in rerun.stdout + rerun.stderr
        # Every row of every night is published, and the index lists exactly what is on disk.
        on_disk = published_on_disk(catalog)
        assert on_disk == {f"faults/en/{row_id}.mp4" for row_id in rows}, (night, stage, rerun.stdout)
        assert set(pd.read_parquet(catalog / "index.parquet").video) == on_disk, (night, stage)
        assert {v["video"] for v in json.loads((catalog / "index.json").read_text())["videos"]} == on_disk
        # Nothing published (before the kill, or by the killed run) was rendered or written again.
        after = mtimes(catalog)
        for name, mtime in {**published_before, **killed}.items():
            assert after[name] == mtime, f"night {night} ({stage}): {name} was rewritten"
        assert_catalog_consistent(catalog)
