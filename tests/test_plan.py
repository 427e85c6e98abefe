"""The run plan (tasks/plan.py): which rows need work, decided from storage metadata, never assumed.

Real files on disk, a real S3 API (moto on 127.0.0.1), real Parquet index and quarantine memory
written by the real functions. What stands in for the per-row work is `simulate_run`: rows the
plan sends to work are "rendered" by hashing their inputs and writing a video, poster and
sidecar the way publishing does (the plan never looks inside them), "quarantined" when their
audio starts with b"BAD" (what a probe would refuse), or "failed QA" when it starts with b"FQA".
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from test_catalog_flow import moto_s3  # noqa: F401 - the fixture: a moto S3 server on 127.0.0.1

from manifests.schema import ManifestRow
from sonic_model.generators import RenderParams
from tasks.catalog import Catalog
from tasks.catalog_index import INDEX_COLUMNS, read_index, update_index
from tasks.catalog_state import read_quarantines, read_seeds, remember_quarantines, remember_seeds
from tasks.fingerprints import Fingerprint, fingerprint_from_info, fingerprint_inputs, local_fingerprint
from tasks.plan import KEEP_FAILED, KEEP_QUARANTINE, SKIP, UPDATE_CAPTIONS, WORK, PlanSettings, plan_rows
from tasks.records import (
    FAILED_QA,
    PUBLISHED,
    QUARANTINED,
    RowInfo,
    RowOutcome,
    content_key,
    frames_key,
    script_sha256,
)

SETTLE_S = 0.2  # the tests' settle window: files older than this are trusted by their fingerprint
# Whether the stand-in publish writes a frames key (publishing does now; test_plan_captions.py does).
PUBLISH_FRAMES_KEY = False


def settings(**changes) -> PlanSettings:
    base = dict(
        generator="preview",
        generator_version="1.0",
        defaults=RenderParams(min_resolution=256),
        limits={"max_file_bytes": 1 << 20},
        max_file_bytes=1 << 20,
        allowed_schemes=("", "file", "memory", "s3", "noinfo"),
    )
    base.update(changes)
    return PlanSettings(**base)


def row(row_id: str, portrait: str, audio: str, **extra) -> ManifestRow:
    return ManifestRow(
        row_id=row_id,
        portrait_uri=portrait,
        audio_uri=audio,
        language="en",
        consent_ref="release/1",
        collection="course",
        **extra,
    )


def write_media(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "face.jpg").write_bytes(b"portrait " * 100)
    for index in range(count):
        (folder / f"a{index}.wav").write_bytes(f"speech {index:04d} ".encode() * 50)


def settle() -> None:
    time.sleep(SETTLE_S * 1.5)


class Run:
    """One run of the stand-in flow: plan, then the work rows 'rendered' or 'quarantined'."""

    def __init__(self, rows, manifest: str, catalog: str, run_id: str, **changes) -> None:
        self.settings = settings(**changes)
        self.plan = plan_rows(rows, manifest, catalog, self.settings, settle_s=SETTLE_S)
        self.rendered: list[str] = []
        self.outcomes = list(self.plan.settled())
        catalog_fs = Catalog(catalog)
        for planned in self.plan.work():
            seen = planned.seen
            audio = read_all(seen.audio_uri)
            if audio.startswith(b"BAD"):
                self.outcomes.append(RowOutcome(info=planned.info, status=QUARANTINED, reasons=("no speech found",)))
                continue
            self.rendered.append(planned.info.row_id)
            if audio.startswith(b"FQA"):
                rejected = f"memory://rejected/{run_id}/{planned.info.row_id}.mp4"
                reasons = ("sync too weak",)
                self.outcomes.append(RowOutcome(planned.info, FAILED_QA, reasons, output_uri=rejected))
                continue
            self.outcomes.append(publish(catalog_fs, planned, run_id, self.settings))
        update_index(catalog, self.outcomes, self.plan.seen_inputs())
        remember_quarantines(catalog, self.plan, self.outcomes, run_id)
        remember_seeds(catalog, self.plan, self.outcomes, run_id)

    def decisions(self) -> dict[str, str]:
        return {planned.info.row_id: planned.decision for planned in self.plan.rows}

    def why(self, row_id: str) -> str:
        return next(p.why for p in self.plan.rows if p.info.row_id == row_id)


def read_all(uri: str) -> bytes:
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        return handle.read()


def publish(catalog: Catalog, planned, run_id: str, plan_settings: PlanSettings) -> RowOutcome:
    """What the render + publish tasks leave in the catalog, as far as the plan can tell."""
    seen = planned.seen
    shas = {name: hashlib.sha256(read_all(getattr(seen, f"{name}_uri"))).hexdigest() for name in ("portrait", "audio")}
    params = planned.row.render_params(plan_settings.defaults).as_dict()
    script = getattr(planned.row, "script_text", None)
    frames = {
        "portrait_sha256": shas["portrait"],
        "audio_sha256": shas["audio"],
        "generator": plan_settings.generator,
        "generator_version": plan_settings.generator_version,
        "params": params,
    }
    key = content_key(**frames, script_sha256=script_sha256(script))
    prefix = planned.info.key_prefix
    catalog.write_bytes(b"video " + key.encode(), catalog.path(prefix + ".mp4"))
    catalog.write_bytes(b"poster", catalog.path(prefix + ".jpg"))
    renditions = [name for name in params["renditions"] if name != "master"]
    for name in renditions:
        catalog.write_bytes(b"rendition", catalog.path(f"{prefix}.{name}.mp4"))
    sidecar = {
        "row_id": planned.info.row_id,
        "collection": planned.info.collection,
        "language": planned.info.language,
        "video": prefix + ".mp4",
        "poster": prefix + ".jpg",
        "content_key": key,
        # Left out (PUBLISH_FRAMES_KEY False): as a catalog published before frames keys were kept.
        **({"frames_key": frames_key(**frames, has_captions=bool(script))} if PUBLISH_FRAMES_KEY else {}),
        "run_id": run_id,
        "inputs": {
            "portrait_uri": seen.portrait_uri,
            "portrait_sha256": shas["portrait"],
            "audio_uri": seen.audio_uri,
            "audio_sha256": shas["audio"],
        },
        "generator": {"name": plan_settings.generator, "version": plan_settings.generator_version, "params": params},
        "renditions": [{"name": name, "video": f"{prefix}.{name}.mp4"} for name in renditions],
        "captions": {"vtt": prefix + ".vtt"} if script else None,
    }
    catalog.write_bytes(json.dumps(sidecar).encode(), catalog.path(prefix + ".json"))
    return RowOutcome(
        info=planned.info,
        status=PUBLISHED,
        output_uri=catalog.uri(catalog.path(prefix + ".mp4")),
        sidecar_uri=catalog.uri(catalog.path(prefix + ".json")),
        content_key=key,
    )


@pytest.fixture
def local(tmp_path):
    write_media(tmp_path / "media")
    manifest = str(tmp_path / "manifest.parquet")
    rows = [row(f"r{i}", "media/face.jpg", f"media/a{i}.wav") for i in range(3)]
    settle()
    return {"root": tmp_path, "manifest": manifest, "catalog": str(tmp_path / "catalog"), "rows": rows}


# --- decisions on local files -------------------------------------------------------------------


@pytest.mark.parametrize("frames_keys", [True, False], ids=["frames-keys", "published-before-frames-keys"])
def test_burning_switched_on_sends_only_rows_it_changes_to_burn_their_published_renditions(
    local, monkeypatch, frames_keys
):
    import dataclasses

    monkeypatch.setitem(globals(), "PUBLISH_FRAMES_KEY", frames_keys)

    media = "media/face.jpg"
    rows = [
        row("b0", media, "media/a0.wav", script_text="Hello there.", renditions="vertical"),
        row("b1", media, "media/a1.wav", renditions="vertical"),  # nothing to burn
        row("b2", media, "media/a2.wav", script_text="Hello again."),  # nowhere to burn it
    ]
    catalog = local["catalog"]
    Run(rows, local["manifest"], catalog, "run-1")
    burning = [dataclasses.replace(r, burn_captions=True) for r in rows]
    reseeded = plan_rows(burning, local["manifest"], catalog, settings(new_seed=True), settle_s=SETTLE_S)
    assert reseeded.rows[0].decision == WORK and reseeded.rows[0].burn_only_key is None  # new frames: rendered
    second = Run(burning, local["manifest"], catalog, "run-2")
    assert second.decisions() == {"b0": WORK, "b1": SKIP, "b2": SKIP}
    planned = second.plan.rows[0]
    assert "captions to be burned in since run run-1" in planned.why and "no new frames" in planned.why
    assert planned.burn_only_key == second.outcomes[-1].content_key  # the key it is published under
    assert Run(burning, local["manifest"], catalog, "run-3").decisions() == {"b0": SKIP, "b1": SKIP, "b2": SKIP}
    fourth = Run(rows, local["manifest"], catalog, "run-4")  # switched off again: rendered again
    assert fourth.decisions()["b0"] == WORK and fourth.plan.rows[0].burn_only_key is None
    assert "burned captions switched off since run run-2" in fourth.why("b0")  # run-3 skipped it


def test_unchanged_rows_are_skipped_by_fingerprint_without_reading_a_byte(local):
    # (the plan reads bytes only to hash them: hashed_inputs counts every input it read)
    first = Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    assert first.decisions() == {"r0": WORK, "r1": WORK, "r2": WORK} and first.why("r0") == "new row"
    index = read_index(local["catalog"])
    assert index.portrait_fingerprint.notna().all() and index.audio_sha256.notna().all()

    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": SKIP, "r1": SKIP, "r2": SKIP}
    assert second.plan.hashed_inputs == 0 and second.rendered == []
    outcome = second.outcomes[0]
    assert outcome.status == "skipped_cached" and outcome.reason == "unchanged since run run-1"
    assert outcome.output_uri.endswith("course/en/r0.mp4") and outcome.sidecar_uri.endswith("course/en/r0.json")


def test_rewrite_with_other_content_and_the_same_size_is_rendered(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    audio = local["root"] / "media" / "a1.wav"
    size = audio.stat().st_size
    audio.write_bytes(b"X" * size)
    assert audio.stat().st_size == size
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": SKIP, "r1": WORK, "r2": SKIP}
    assert second.why("r1") == "audio changed since run run-1"
    assert second.rendered == ["r1"]


def test_rewrite_with_the_old_mtime_restored_is_rendered(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    portrait = local["root"] / "media" / "face.jpg"
    before = portrait.stat()
    portrait.write_bytes(b"another face " * 69 + b"xyz")  # same length: 900 bytes
    os.utime(portrait, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = portrait.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": WORK, "r1": WORK, "r2": WORK}  # one portrait, three rows
    assert second.why("r0") == "portrait changed since run run-1"
    assert second.plan.hashed_inputs == 1  # the shared portrait is hashed once; the audio files were unchanged


def test_touched_file_with_the_same_bytes_is_hashed_skipped_and_remembered(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    audio = local["root"] / "media" / "a2.wav"
    audio.write_bytes(audio.read_bytes())  # same content, new ctime/mtime
    settle()
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions()["r2"] == SKIP and second.plan.hashed_inputs == 1
    assert second.why("r2") == "unchanged since run run-1 (content re-hashed: audio touched, same bytes)"
    third = Run(local["rows"], local["manifest"], local["catalog"], "run-3")
    assert third.decisions()["r2"] == SKIP and third.plan.hashed_inputs == 0  # the new fingerprint was remembered


def test_a_file_written_moments_before_the_plan_is_hashed_not_trusted(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    audio = local["root"] / "media" / "a0.wav"
    audio.write_bytes(audio.read_bytes())
    fingerprint = local_fingerprint(str(audio), settle_s=SETTLE_S)
    assert fingerprint.value is None and "settles" in fingerprint.problem
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions()["r0"] == SKIP and "audio fingerprint not trusted" in second.why("r0")
    assert read_index(local["catalog"]).set_index("row_id").audio_fingerprint.isna()["r0"]


def test_a_published_video_deleted_from_the_catalog_is_rendered_again(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    (Path(local["catalog"]) / "course" / "en" / "r1.mp4").unlink()
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": SKIP, "r1": WORK, "r2": SKIP}
    assert second.why("r1") == "published video is missing from the catalog: rendering again"
    assert second.rendered == ["r1"]


def test_changed_parameters_are_work_without_hashing(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    rows = list(local["rows"])
    rows[0] = row("r0", "media/face.jpg", "media/a0.wav", seed=7)
    second = Run(rows, local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": WORK, "r1": SKIP, "r2": SKIP}
    assert (
        second.why("r0") == "generator, parameters or script changed since run run-1" and second.plan.hashed_inputs == 0
    )
    third = Run(rows, local["manifest"], local["catalog"], "run-3", generator_version="1.1")
    assert set(third.decisions().values()) == {WORK}


def test_two_rows_with_identical_inputs_are_two_catalog_entries(local):
    rows = [row("twin-a", "media/face.jpg", "media/a0.wav"), row("twin-b", "media/face.jpg", "media/a0.wav")]
    first = Run(rows, local["manifest"], local["catalog"], "run-1")
    assert first.rendered == ["twin-a", "twin-b"]
    assert sorted(read_index(local["catalog"]).row_id) == ["twin-a", "twin-b"]
    second = Run(rows, local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"twin-a": SKIP, "twin-b": SKIP}
    assert sorted(read_index(local["catalog"]).row_id) == ["twin-a", "twin-b"]


def test_moving_an_input_to_another_path_with_the_same_bytes_is_skipped(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    moved = local["root"] / "media" / "moved.wav"
    moved.write_bytes((local["root"] / "media" / "a0.wav").read_bytes())
    rows = [row("r0", "media/face.jpg", "media/moved.wav")] + local["rows"][1:]
    second = Run(rows, local["manifest"], local["catalog"], "run-2")
    assert second.decisions()["r0"] == SKIP and "audio now read from another URI" in second.why("r0")
    assert read_index(local["catalog"]).set_index("row_id").audio_uri["r0"] == str(moved)


def test_force_makes_every_row_work(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    forced = Run(local["rows"], local["manifest"], local["catalog"], "run-2", force=True)
    assert set(forced.decisions().values()) == {WORK} and forced.why("r0") == "--force"
    assert forced.rendered == ["r0", "r1", "r2"]


def test_an_index_without_input_memory_is_hashed_once_then_trusted(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    index_path = Path(local["catalog"]) / "index.parquet"
    pd.read_parquet(index_path)[list(INDEX_COLUMNS)].to_parquet(index_path)  # as written before this change
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert set(second.decisions().values()) == {SKIP} and second.plan.hashed_inputs == 4
    third = Run(local["rows"], local["manifest"], local["catalog"], "run-3")
    assert set(third.decisions().values()) == {SKIP} and third.plan.hashed_inputs == 0


def test_rows_published_by_a_killed_run_are_found_from_their_sidecars(local):
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    (Path(local["catalog"]) / "index.parquet").unlink()  # killed before its index update
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert set(second.decisions().values()) == {SKIP} and second.plan.sidecars_read == 3
    assert sorted(read_index(local["catalog"]).row_id) == ["r0", "r1", "r2"]


# --- quarantines ----------------------------------------------------------------------------------


def test_unchanged_quarantine_is_kept_and_recheck_probes_again(local):
    bad = local["root"] / "media" / "a1.wav"
    bad.write_bytes(b"BAD" + bad.read_bytes()[3:])
    settle()
    first = Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    assert [o.status for o in first.outcomes if o.info.row_id == "r1"] == [QUARANTINED]
    assert list(read_quarantines(Catalog(local["catalog"]))) == ["course/en/r1"]

    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions() == {"r0": SKIP, "r1": KEEP_QUARANTINE, "r2": SKIP}
    kept = next(o for o in second.outcomes if o.info.row_id == "r1")
    assert kept.status == QUARANTINED
    assert kept.reason == (
        "quarantine kept: no speech found (inputs, limits and parameters unchanged since run run-1; "
        "--recheck to probe again)"
    )

    rechecked = Run(local["rows"], local["manifest"], local["catalog"], "run-3", recheck=True)
    assert rechecked.decisions()["r1"] == WORK and rechecked.why("r1") == "--recheck"

    changed_limits = Run(
        local["rows"], local["manifest"], local["catalog"], "run-4", limits={"max_file_bytes": 1 << 21}
    )
    assert changed_limits.decisions()["r1"] == WORK
    assert "something it depended on changed" in changed_limits.why("r1")


def test_fixed_input_of_a_quarantined_row_is_probed_and_forgotten_once_published(local):
    bad = local["root"] / "media" / "a1.wav"
    good = bad.read_bytes()
    bad.write_bytes(b"BAD" + good[3:])
    settle()
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    bad.write_bytes(good)
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.decisions()["r1"] == WORK and second.rendered == ["r1"]
    assert read_quarantines(Catalog(local["catalog"])) == {}


def test_storage_trouble_is_not_remembered_as_a_quarantine(local):
    run = Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    info = RowInfo.from_row(local["rows"][1])
    unreadable = RowOutcome(info=info, status=QUARANTINED, reasons=("permission denied reading ...",), transient=True)
    remember_quarantines(local["catalog"], run.plan, [unreadable], "run-1b")
    assert read_quarantines(Catalog(local["catalog"])) == {}
    lasting = RowOutcome(info=info, status=QUARANTINED, reasons=("no speech found",))
    remember_quarantines(local["catalog"], run.plan, [lasting], "run-1c")
    assert list(read_quarantines(Catalog(local["catalog"]))) == ["course/en/r1"]


# --- failed rows and re-rolled seeds (issue 23) -------------------------------------------------------


def fail_qa(local) -> bytes:
    """Make r1's audio one that 'fails QA'; returns its good bytes."""
    audio = local["root"] / "media" / "a1.wav"
    good = audio.read_bytes()
    audio.write_bytes(b"FQA" + good[3:])
    settle()
    return good


def test_an_unchanged_failed_row_is_kept_until_what_its_qa_verdict_depends_on_changes(local):
    fail_qa(local)
    args = (local["rows"], local["manifest"], local["catalog"])
    first = Run(*args, "run-1")
    assert first.rendered == ["r0", "r1", "r2"]
    remembered = read_quarantines(Catalog(local["catalog"]))["course/en/r1"]
    assert (remembered.status, remembered.reason, remembered.run_id) == (FAILED_QA, "sync too weak", "run-1")

    kept = Run(*args, "run-2")
    assert kept.decisions() == {"r0": SKIP, "r1": KEEP_FAILED, "r2": SKIP} and kept.rendered == []
    outcome = next(o for o in kept.outcomes if o.info.row_id == "r1")
    assert (outcome.status, outcome.plan) == (FAILED_QA, "failed QA in run run-1, nothing changed since")
    assert outcome.reason == "failed QA kept: sync too weak (unchanged since run run-1; --recheck to render again)"
    assert outcome.output_uri == "memory://rejected/run-1/r1.mp4"  # the rejected video stays findable
    assert kept.plan.counts() == {SKIP: 2, KEEP_QUARANTINE: 0, KEEP_FAILED: 1, UPDATE_CAPTIONS: 0, WORK: 0}

    # `rerun` (retry_failed) and --recheck render it again; so does anything its verdict depends on.
    assert Run(*args, "run-3", retry_failed=True).why("r1") == "failed QA in run run-1: rendered again (rerun)"
    assert Run(*args, "run-4", recheck=True).why("r1") == "--recheck"
    assert Run(*args, "run-5", force=True).rendered == ["r0", "r1", "r2"]
    previous = "run-5"
    for number, changed in enumerate(
        (
            {"qa_thresholds": {"min_sync_correlation": 0.2}},
            {"generator_version": "1.1"},
            {"defaults": RenderParams(min_resolution=256, seed=7)},
        )
    ):
        run = Run(*args, f"run-6.{number}", **changed)
        assert run.decisions()["r1"] == WORK, changed
        assert run.why("r1") == f"failed QA in run {previous}; something it depended on changed", changed
        previous = f"run-6.{number}"
    # Once remembered under the new thresholds, the failure is kept under them.
    strict = {"qa_thresholds": {"min_sync_correlation": 0.2}}
    Run(*args, "run-7", **strict)
    assert Run(*args, "run-8", **strict).decisions()["r1"] == KEEP_FAILED
    # The QA code is part of it too (a better sync measure renders failed rows again once).
    from tasks import verdict_conditions as plan_module

    monkey_version = dict(plan_module._CODE_VERSIONS)
    try:
        plan_module._CODE_VERSIONS["qa"] = "another QA"
        assert Run(*args, "run-9", **strict).decisions()["r1"] == WORK
    finally:
        plan_module._CODE_VERSIONS.clear()
        plan_module._CODE_VERSIONS.update(monkey_version)


def test_an_input_fixed_after_a_qa_failure_is_rendered_and_the_failure_forgotten(local):
    good = fail_qa(local)
    Run(local["rows"], local["manifest"], local["catalog"], "run-1")
    (local["root"] / "media" / "a1.wav").write_bytes(good)
    second = Run(local["rows"], local["manifest"], local["catalog"], "run-2")
    assert second.rendered == ["r1"] and second.why("r1") == "failed QA in run run-1; something it depended on changed"
    assert read_quarantines(Catalog(local["catalog"])) == {}


def test_new_seed_re_rolls_failed_rows_and_the_catalog_keeps_the_seed(local):
    good = fail_qa(local)
    args = (local["rows"], local["manifest"], local["catalog"])
    Run(*args, "run-1")
    rerolled = Run(*args, "run-2", retry_failed=True, new_seed=True)
    planned = rerolled.plan.by_key()["course/en/r1"]
    old, seed = planned.new_seed
    assert old == 42 and seed != 42 and planned.row.seed == seed
    assert planned.why == f"failed QA in run run-1: rendered again (rerun); --new-seed: seed {seed} (was 42)"
    # Rows in the catalog are left alone: no new seed, no render.
    assert rerolled.decisions() == {"r0": SKIP, "r1": WORK, "r2": SKIP} and rerolled.rendered == ["r1"]
    assert {k: (s.seed, s.replaces, s.run_id) for k, s in read_seeds(Catalog(local["catalog"])).items()} == {
        "course/en/r1": (seed, 42, "run-2")
    }
    # Another draw gives another seed, which still replaces the row's own seed (42).
    again = Run(*args, "run-2b", retry_failed=True, new_seed=True).plan.by_key()["course/en/r1"]
    assert again.new_seed[0] == 42 and again.new_seed[1] not in (42, seed)
    assert again.why.endswith(f"--new-seed: seed {again.new_seed[1]} (was {seed})")

    # The remembered seed is the row's from now on: the next nightly renders with it ...
    remembered = read_seeds(Catalog(local["catalog"]))["course/en/r1"].seed
    (local["root"] / "media" / "a1.wav").write_bytes(good)
    fixed = Run(*args, "run-3")
    assert fixed.rendered == ["r1"]
    sidecar = json.loads((local["root"] / "catalog" / "course" / "en" / "r1.json").read_text())
    assert sidecar["generator"]["params"]["seed"] == remembered
    with_42 = content_key(
        portrait_sha256=sidecar["inputs"]["portrait_sha256"],
        audio_sha256=sidecar["inputs"]["audio_sha256"],
        generator="preview",
        generator_version="1.0",
        params={**sidecar["generator"]["params"], "seed": 42},
    )
    assert sidecar["content_key"] != with_42
    # ... and skips it while nothing changes.
    assert Run(*args, "run-4").decisions()["r1"] == SKIP
    # A seed the manifest gives wins: the re-rolled one is forgotten.
    rows = [*local["rows"][:1], row("r1", "media/face.jpg", "media/a1.wav", seed=7), *local["rows"][2:]]
    manifest_seed = Run(rows, local["manifest"], local["catalog"], "run-5")
    assert manifest_seed.why("r1") == "generator, parameters or script changed since run run-3"
    assert manifest_seed.plan.by_key()["course/en/r1"].row.seed == 7
    assert read_seeds(Catalog(local["catalog"])) == {}


def test_new_seed_with_a_generator_that_takes_no_seed_renders_again_as_it_was(local):
    from sonic_model.generators import generator_takes_seed, register_generator

    class Unseeded:
        version = "1"
        seeded = False

    register_generator("test-unseeded", Unseeded)
    assert generator_takes_seed("preview")  # its blinks and head sway are drawn from the seed
    assert not generator_takes_seed("test-unseeded")
    fail_qa(local)
    args = (local["rows"], local["manifest"], local["catalog"])
    Run(*args, "run-1", generator="test-unseeded")
    again = Run(*args, "run-2", generator="test-unseeded", seeded=False, new_seed=True)
    planned = again.plan.by_key()["course/en/r1"]
    assert planned.decision == WORK and planned.new_seed is None and planned.row.seed is None
    assert planned.why == (
        "failed QA kept by the plan (failed QA in run run-1, nothing changed since); --new-seed: the test-unseeded "
        "generator takes no seed, so it renders again as it was"
    )
    assert again.rendered == ["r1"] and read_seeds(Catalog(local["catalog"])) == {}


# --- fingerprints -------------------------------------------------------------------------------------


def test_fingerprints_from_each_filesystem_s_metadata():
    listed_at = 2_000_000_000.0
    s3 = fingerprint_from_info("s3", {"type": "file", "size": 5, "ETag": '"abc"', "LastModified": "x"}, listed_at)
    assert s3 == Fingerprint("s3:size=5;etag=abc")
    gcs = fingerprint_from_info("gs", {"type": "file", "size": 5, "generation": "17", "crc32c": "q=="}, listed_at)
    assert gcs.value == "gs:size=5;generation=17;crc32c=q==;md5=None"
    assert fingerprint_from_info("s3", {"type": "file", "size": 5}, listed_at).value is None
    fresh = fingerprint_from_info("memory", {"type": "file", "size": 5, "created": listed_at - 0.5}, listed_at)
    assert fresh.value is None and "settles" in fresh.problem
    old = fingerprint_from_info("memory", {"type": "file", "size": 5, "created": listed_at - 60}, listed_at)
    assert old.value is not None
    assert fingerprint_from_info("odd", {"type": "file", "size": 5}, listed_at).value is None
    assert fingerprint_from_info("s3", {"type": "directory", "size": 0}, listed_at).value is None


class NoInfoFileSystem(MemoryFileSystem):
    """Storage that serves bytes but refuses metadata calls (like an HTTP server without HEAD)."""

    protocol = ("noinfo",)
    store: dict = {}
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol("memory://" + path[len("noinfo://") :] if path.startswith("noinfo://") else path)

    def info(self, path, **kwargs):
        raise PermissionError("metadata not allowed")

    def ls(self, path, detail=True, **kwargs):
        raise PermissionError("listing not allowed")


def test_an_input_whose_info_fails_is_hashed_never_assumed_unchanged(tmp_path):
    fsspec.register_implementation("noinfo", NoInfoFileSystem, clobber=True)
    fs = NoInfoFileSystem()
    fs.pipe_file("/media/face.jpg", b"portrait")
    fs.pipe_file("/media/a.wav", b"speech one")
    rows = [row("r", "noinfo://media/face.jpg", "noinfo://media/a.wav")]
    manifest, catalog = "noinfo://manifest.parquet", str(tmp_path / "catalog")
    assert (
        fingerprint_inputs(["noinfo://media/a.wav"])["noinfo://media/a.wav"].problem
        == "info() failed (PermissionError)"
    )
    Run(rows, manifest, catalog, "run-1", allowed_roots=("noinfo://",))
    second = Run(rows, manifest, catalog, "run-2", allowed_roots=("noinfo://",))
    assert second.decisions() == {"r": SKIP} and second.plan.hashed_inputs == 2
    fs.pipe_file("/media/a.wav", b"speech two")  # same length, other bytes
    third = Run(rows, manifest, catalog, "run-3", allowed_roots=("noinfo://",))
    assert third.decisions() == {"r": WORK} and third.why("r") == "audio changed since run run-1"


# --- S3 (moto on 127.0.0.1) ----------------------------------------------------------------------------


def test_s3_object_overwritten_with_the_same_length_is_rendered(moto_s3):  # noqa: F811 (the fixture imported above)
    fs = fsspec.filesystem("s3")
    fs.mkdir("media-bucket")
    fs.pipe_file("media-bucket/faces/face.jpg", b"portrait " * 100)  # alone in its folder: one HEAD
    for index in range(4):  # four in one folder: one listing
        fs.pipe_file(f"media-bucket/drop/a{index}.wav", f"speech {index:04d} ".encode() * 50)
    rows = [row(f"r{i}", "../faces/face.jpg", f"a{i}.wav") for i in range(4)]
    manifest = "s3://media-bucket/drop/manifest.parquet"
    first = Run(rows, manifest, moto_s3, "run-1", allowed_roots=("s3://media-bucket",))
    assert set(first.decisions().values()) == {WORK}
    assert read_index(moto_s3).audio_fingerprint.str.startswith("s3:size=600;etag=").all()

    size = fs.info("media-bucket/drop/a1.wav")["size"]
    fs.pipe_file("media-bucket/drop/a1.wav", b"Y" * size)
    assert fs.info("media-bucket/drop/a1.wav")["size"] == size
    fs.rm("catalog-bucket/catalog/course/en/r3.mp4")
    second = Run(rows, manifest, moto_s3, "run-2", allowed_roots=("s3://media-bucket",))
    assert second.decisions() == {"r0": SKIP, "r1": WORK, "r2": SKIP, "r3": WORK}
    assert second.why("r1") == "audio changed since run run-1" and "missing" in second.why("r3")
    assert second.plan.hashed_inputs == 1  # only the overwritten object was read; the rest by their ETags


# --- the index update costs what changed ------------------------------------------------------------


def test_index_update_reads_only_new_sidecars_and_checks_liveness_with_one_listing(tmp_path, monkeypatch):
    write_media(tmp_path / "media", count=40)
    settle()
    manifest, catalog = str(tmp_path / "manifest.parquet"), str(tmp_path / "catalog")
    rows = [row(f"r{i}", "media/face.jpg", f"media/a{i}.wav") for i in range(40)]
    Run(rows, manifest, catalog, "run-1")
    (tmp_path / "media" / "a3.wav").write_bytes(b"other speech " * 46 + b"xx")
    (tmp_path / "catalog" / "course" / "en" / "r7.json").unlink()  # withdrawn: must leave the index
    reads, listings = [], []
    monkeypatch.setattr(Catalog, "exists", lambda self, path: pytest.fail(f"a request per entry: exists({path})"))
    original_read, original_list = Catalog.read_json, Catalog.published_objects
    monkeypatch.setattr(Catalog, "read_json", lambda self, path: reads.append(path) or original_read(self, path))
    monkeypatch.setattr(Catalog, "published_objects", lambda self: listings.append(1) or original_list(self))
    second = Run(rows, manifest, catalog, "run-2")
    assert sorted(second.rendered) == ["r3", "r7"]
    # the plan lists once; the index update lists once and reads the two new sidecars
    assert len(listings) == 2 and sorted(Path(p).name for p in reads) == ["r3.json", "r7.json"]
    index = read_index(catalog)
    assert len(index) == 40 and index.set_index("row_id").run_id["r3"] == "run-2"
    public = json.loads((tmp_path / "catalog" / "index.json").read_text())["videos"]
    assert len(public) == 40 and set(public[0]) == set(INDEX_COLUMNS)  # fingerprints stay out of the public index


def test_content_keys_match_the_renderer_s():
    from tasks.plan import _KeyMaker

    plan_settings = settings()
    for params in (
        RenderParams().as_dict(),
        RenderParams(seed=7, av_offset_ms=12.5, expand_ratio=0.75).as_dict(),
        # a preset, renditions and a loudness target are part of the key; `explicit` is not
        RenderParams.resolve("high-quality", {"seed": 3, "loudness_target": -16.0}).as_dict(),
    ):
        for portrait, audio in (
            ("a" * 64, "b" * 64),
            (hashlib.sha256(b"x").hexdigest(), hashlib.sha256(b"y").hexdigest()),
        ):
            assert _KeyMaker(plan_settings, params)(portrait, audio) == content_key(
                portrait_sha256=portrait,
                audio_sha256=audio,
                generator="preview",
                generator_version="1.0",
                params=params,
            )


def test_a_script_joins_the_content_key_only_when_there_is_one():
    from tasks.plan import _KeyMaker
    from tasks.records import script_sha256

    params = RenderParams().as_dict()
    portrait, audio = "a" * 64, "b" * 64
    plain = content_key(portrait_sha256=portrait, audio_sha256=audio, generator="preview", generator_version="1.0",
                        params=params)  # fmt: skip
    assert script_sha256(None) is None and script_sha256("  ") is None
    assert _KeyMaker(settings(), params, None)(portrait, audio) == plain  # keys before captions are kept
    script = script_sha256("Hello,\n  world.")
    assert script == script_sha256("Hello, world.")  # white space as captions read it
    keyed = _KeyMaker(settings(), params, script)(portrait, audio)
    assert keyed != plain
    assert keyed == content_key(portrait_sha256=portrait, audio_sha256=audio, generator="preview",
                                generator_version="1.0", params=params, script_sha256=script)  # fmt: skip
    assert keyed != _KeyMaker(settings(), params, script_sha256("Another script."))(portrait, audio)
