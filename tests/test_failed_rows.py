"""Failed rows in a nightly (issue 23, part 5): a `failed_qa` row that nothing changed for is kept
by the plan without a task; `rerun` renders it again and `rerun --new-seed` re-rolls its seed.

Real CLI, real Prefect (task runs counted on its API), real renders by the preview generator at
256 px. The row fails QA for a reason that does not depend on the seed: the run demands a picture
4096 px wide (`--qa-threshold expected_width=4096`); without that threshold the same row passes.
One catalog goes through the steps in order (module fixtures); each test checks one step
(tests/test_plan.py covers the same decisions on stand-in renders, and the cases around them).
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from test_catalog_flow import ledger_of, manifest_rows, run_cli, run_id_of, task_run_names, write_media
from test_nightly import count_task_runs

from tasks.catalog import Catalog
from tasks.catalog_state import read_quarantines, read_seeds

STRICT = ("--qa-threshold", "expected_width=4096")
ROW = "strict-en"
KEY = f"course/en/{ROW}"


def render(setup: dict, *options: str) -> tuple[pd.DataFrame, str]:
    code, out, err = run_cli("render", str(setup["manifest"]), "--catalog", str(setup["catalog"]), *options)
    assert code in (0, 2) and "Traceback" not in err, out + err
    run_id = run_id_of(out)
    return ledger_of(str(setup["catalog"]), run_id).set_index("row_id"), run_id


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """The catalog after a failed render and a nightly that keeps it (one render in all)."""
    root = tmp_path_factory.mktemp("failed-rows")
    durations = write_media(root / "media")
    good = next(r for r in manifest_rows(durations) if r["row_id"] == "good-en")
    manifest = root / "manifest.parquet"
    pd.DataFrame([{**good, "row_id": ROW}]).to_parquet(manifest)
    time.sleep(2.1)  # let the media settle: files written in the last 2 s are hashed, not trusted by metadata
    setup = {"root": root, "manifest": manifest, "catalog": root / "catalog"}
    setup["failed"] = render(setup, *STRICT)
    setup["memory_after_failure"] = read_quarantines(Catalog(str(setup["catalog"])))
    setup["kept"] = render(setup, *STRICT)
    return setup


@pytest.fixture(scope="module")
def rerolled(steps):
    """Then `rerun --new-seed` (fails again: the width does not depend on the seed), a nightly
    without the strict threshold (publishes with the re-rolled seed), and one more (two renders)."""
    code, out, err = run_cli("rerun", "--catalog", str(steps["catalog"]), "--new-seed")
    assert code == 2 and "Traceback" not in err, out + err
    rerun_id = run_id_of(out)
    steps["rerolled"] = (ledger_of(str(steps["catalog"]), rerun_id).set_index("row_id"), rerun_id)
    steps["seeds_after_rerun"] = read_seeds(Catalog(str(steps["catalog"])))
    steps["published"] = render(steps)
    steps["unchanged"] = render(steps)
    return steps


def test_a_row_failing_qa_is_remembered_with_its_reason(steps):
    ledger, run_id = steps["failed"]
    assert ledger.status[ROW] == "failed_qa" and "4096" in ledger.reason[ROW]
    remembered = steps["memory_after_failure"][KEY]
    assert (remembered.status, remembered.run_id, remembered.reason) == ("failed_qa", run_id, ledger.reason[ROW])
    assert remembered.output_uri == ledger.output_uri[ROW]  # the rejected video under that run


def test_an_unchanged_failed_row_is_kept_by_the_plan_with_no_task(steps):
    ledger, run_id = steps["kept"]
    first = steps["failed"][1]
    first_reason = steps["failed"][0].reason[ROW]
    assert ledger.status[ROW] == "failed_qa"
    assert ledger.reason[ROW] == (
        f"failed QA kept: {first_reason} (unchanged since run {first}; --recheck to render again)"
    )
    assert ledger.plan[ROW] == f"failed QA in run {first}, nothing changed since"
    names = task_run_names(steps["catalog"], run_id)
    assert not [name for name in names if name.endswith(ROW)], names
    assert count_task_runs(steps["catalog"], run_id) == len(names) <= 5, names
    summary = json.loads((steps["catalog"] / "_runs" / run_id / "run.json").read_text())
    assert summary["plan"]["keep_failed"] == 1 and summary["plan"]["work"] == 0


def test_rerun_new_seed_renders_the_failed_row_again_with_a_fresh_seed(rerolled):
    steps = rerolled
    ledger, run_id = steps["rerolled"]
    assert ledger.status[ROW] == "failed_qa"  # the width does not depend on the seed
    assert not ledger.reason[ROW].startswith("failed QA kept")
    assert "render-" + ROW in task_run_names(steps["catalog"], run_id)
    seed = steps["seeds_after_rerun"][KEY]
    assert (seed.replaces, seed.run_id) == (42, run_id) and seed.seed != 42
    assert ledger.plan[ROW].endswith(f"--new-seed: seed {seed.seed} (was 42)")
    # Another seed, another video: the content key is not the one rendered with seed 42.
    assert ledger.content_key[ROW] != steps["failed"][0].content_key[ROW]
    run = json.loads((steps["catalog"] / "_runs" / run_id / "run.json").read_text())
    assert run["new_seed"] is True and run["rerun_of"]
    first = json.loads((steps["catalog"] / "_runs" / steps["failed"][1] / "run.json").read_text())
    assert first["new_seed"] is False


def test_the_re_rolled_seed_is_in_the_sidecar_and_the_content_key_and_stays(rerolled):
    steps = rerolled
    ledger, _ = steps["published"]
    seed = steps["seeds_after_rerun"][KEY]
    # Without the strict threshold the failure's conditions changed: rendered, with the remembered seed.
    assert ledger.status[ROW] == "published"
    assert ledger.plan[ROW] == f"failed QA in run {steps['rerolled'][1]}; something it depended on changed"
    sidecar = json.loads((steps["catalog"] / "course" / "en" / f"{ROW}.json").read_text())
    assert sidecar["generator"]["params"]["seed"] == seed.seed
    assert sidecar["content_key"] == ledger.content_key[ROW] == steps["rerolled"][0].content_key[ROW]
    assert KEY not in read_quarantines(Catalog(str(steps["catalog"])))
    # The next nightly renders nothing: the published video was made with the remembered seed.
    unchanged, _ = steps["unchanged"]
    assert unchanged.status[ROW] == "skipped_cached"
