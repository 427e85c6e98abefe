"""A catalog that heals itself: damaged state files are rebuilt or dropped with one warning, and
every run ends with an index equal to what is published on disk (sidecar + video pairs).

Renders use the preview generator at 256 px (seconds a row)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
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
    return {
        str(p.relative_to(catalog)): p.stat().st_mtime_ns
        for p in catalog.rglob("*")
        if p.is_file()
        and p.suffix in (".mp4", ".json")
        and not p.relative_to(catalog).parts[0].startswith("_")
        and len(p.relative_to(catalog).parts) > 1
    }


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
