"""The plan and captions: a row whose frames' inputs are unchanged but whose script or captions
file changed gets its captions updated (`update_captions`), never rendered again; the bytes of a
captions_uri file are in the content key; anything that changes the frames renders again.

A stand-in flow (as in test_plan.py): publishing writes what the render would (keys, sidecar,
index), no media. The real update is tested in test_captions_update.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from tasks.catalog import Catalog
from tasks.catalog_index import update_index
from tasks.catalog_state import remember_quarantines
from tasks.plan import plan_rows
from tasks.records import (
    CAPTIONS_UPDATED,
    FAILED_QA,
    KEEP_FAILED,
    PUBLISHED,
    SKIP,
    UPDATE_CAPTIONS,
    WORK,
    RowOutcome,
    content_key,
    frames_key,
    script_sha256,
)
from tests.test_plan import SETTLE_S, read_all, row, settings, settle, write_media

SCRIPT = "Welcome to the first lesson. Today we learn how captions are timed."
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nWelcome.\n"


class Run:
    """Plan, then each row the stand-in way: `work` rows rendered and published (or failed QA
    when their script says FAIL), `update_captions` rows published with the new key only."""

    def __init__(self, rows, manifest: str, catalog: str, run_id: str, **changes) -> None:
        self.settings = settings(**changes)
        self.plan = plan_rows(rows, manifest, catalog, self.settings, settle_s=SETTLE_S)
        self.rendered: list[str] = []
        self.recaptioned: list[str] = []
        self.burned: list[str] = []  # burn-only rows (tasks/burn_published.py): no frames generated
        self.outcomes = list(self.plan.settled())
        for planned in self.plan.rows:
            if planned.decision not in (WORK, UPDATE_CAPTIONS):
                continue
            if "FAIL" in (planned.row.script_text or ""):
                reasons = ("script-vs-audio match 0.40 under 1.00",)
                self.outcomes.append(RowOutcome(planned.info, FAILED_QA, reasons, output_uri="memory://rejected.mp4"))
                continue
            if planned.decision == UPDATE_CAPTIONS:
                self.recaptioned.append(planned.info.row_id)
            elif planned.burn_only:
                self.burned.append(planned.info.row_id)
                content, frames = planned.captions_update
                assert frames == self._keys(planned)[1]  # the frames it keeps are the ones it would render
            else:
                self.rendered.append(planned.info.row_id)
            self.outcomes.append(self._publish(Catalog(catalog), planned, run_id))
        update_index(catalog, self.outcomes, self.plan.seen_inputs())
        remember_quarantines(catalog, self.plan, self.outcomes, run_id)

    def _keys(self, planned) -> tuple[str, str, dict]:
        seen = planned.seen
        names = ("portrait", "audio", "captions") if seen.captions_uri else ("portrait", "audio")
        shas = {name: hashlib.sha256(read_all(getattr(seen, f"{name}_uri"))).hexdigest() for name in names}
        frames = {
            "portrait_sha256": shas["portrait"],
            "audio_sha256": shas["audio"],
            "generator": self.settings.generator,
            "generator_version": self.settings.generator_version,
            "params": planned.row.render_params(self.settings.defaults).as_dict(),
        }
        script = script_sha256(planned.row.script_text)
        whole = content_key(**frames, script_sha256=script, captions_file_sha256=shas.get("captions"))
        return whole, frames_key(**frames, has_captions=script is not None or "captions" in shas), shas

    def _publish(self, catalog: Catalog, planned, run_id: str) -> RowOutcome:
        whole, frames, shas = self._keys(planned)
        if planned.decision == UPDATE_CAPTIONS:
            assert planned.captions_update[0] == whole
        if planned.burn_only:
            assert planned.burn_only == (whole, frames)  # the keys a render would publish it under
        seen, prefix = planned.seen, planned.info.key_prefix
        catalog.write_bytes(b"video " + frames.encode(), catalog.path(prefix + ".mp4"))
        renditions = [name for name in planned.row.render_params(self.settings.defaults).renditions if name != "master"]
        for name in renditions:
            catalog.write_bytes(b"rendition", catalog.path(f"{prefix}.{name}.mp4"))
        inputs = {"portrait_uri": seen.portrait_uri, "portrait_sha256": shas["portrait"]}
        inputs.update(audio_uri=seen.audio_uri, audio_sha256=shas["audio"])
        if seen.captions_uri:
            inputs.update(captions_uri=seen.captions_uri, captions_sha256=shas["captions"])
        sidecar = {
            "row_id": planned.info.row_id,
            "video": prefix + ".mp4",
            "content_key": whole,
            "frames_key": frames,
            "run_id": run_id,
            "inputs": inputs,
            "renditions": [{"name": name, "video": f"{prefix}.{name}.mp4"} for name in renditions],
            "captions": {"vtt": prefix + ".vtt", "script_sha256": script_sha256(planned.row.script_text)},
        }
        catalog.write_bytes(json.dumps(sidecar).encode(), catalog.path(prefix + ".json"))
        status = CAPTIONS_UPDATED if planned.decision == UPDATE_CAPTIONS else PUBLISHED
        return RowOutcome(
            info=planned.info,
            status=status,
            output_uri=catalog.uri(catalog.path(prefix + ".mp4")),
            sidecar_uri=catalog.uri(catalog.path(prefix + ".json")),
            content_key=whole,
        )

    def decisions(self) -> dict[str, str]:
        return {planned.info.row_id: planned.decision for planned in self.plan.rows}

    def why(self, row_id: str) -> str:
        return next(p.why for p in self.plan.rows if p.info.row_id == row_id)


@pytest.fixture
def captioned(tmp_path: Path):
    write_media(tmp_path / "media", count=2)
    (tmp_path / "media" / "r1.vtt").write_text(VTT)
    rows = [
        row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT),
        row("r1", "media/face.jpg", "media/a1.wav", captions_uri="media/r1.vtt"),
    ]
    settle()
    args = (str(tmp_path / "manifest.parquet"), str(tmp_path / "catalog"))
    first = Run(rows, *args, "run-1")
    assert first.rendered == ["r0", "r1"]
    return {"root": tmp_path, "rows": rows, "args": args}


def test_a_changed_script_updates_captions_without_rendering_or_hashing(captioned) -> None:
    changed = row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT + " One more sentence.")
    rows = [changed, captioned["rows"][1]]
    second = Run(rows, *captioned["args"], "run-2")
    assert second.decisions() == {"r0": UPDATE_CAPTIONS, "r1": SKIP}
    assert second.rendered == [] and second.recaptioned == ["r0"]
    assert second.why("r0") == "script changed since run run-1; its frames kept"
    assert second.plan.hashed_inputs == 0  # decided from the index and the fingerprints alone
    assert second.plan.counts()[UPDATE_CAPTIONS] == 1
    # The updated key is remembered: the next night skips the row.
    third = Run(rows, *captioned["args"], "run-3")
    assert third.decisions() == {"r0": SKIP, "r1": SKIP} and third.rendered == third.recaptioned == []


def test_white_space_in_the_script_changes_nothing(captioned) -> None:
    rows = [row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT.replace(" ", "\n  ")), captioned["rows"][1]]
    assert Run(rows, *captioned["args"], "run-2").decisions() == {"r0": SKIP, "r1": SKIP}


def test_a_captions_file_rewritten_in_place_is_in_the_key(captioned) -> None:
    """Same URI, new bytes: the content key changes with the file's content, not its name."""
    settle()
    (captioned["root"] / "media" / "r1.vtt").write_text(VTT.replace("Welcome.", "Welcome back."))
    settle()
    second = Run(captioned["rows"], *captioned["args"], "run-2")
    assert second.decisions() == {"r0": SKIP, "r1": UPDATE_CAPTIONS}
    assert second.why("r1") == "captions file changed since run run-1; its frames kept"
    assert second.plan.hashed_inputs == 1  # only the captions file: its fingerprint changed
    # Touched again with the same bytes: hashed, found unchanged, skipped.
    settle()
    (captioned["root"] / "media" / "r1.vtt").write_text(VTT.replace("Welcome.", "Welcome back."))
    settle()
    third = Run(captioned["rows"], *captioned["args"], "run-3")
    assert third.decisions() == {"r0": SKIP, "r1": SKIP}
    assert "captions touched, same bytes" in third.why("r1")


def test_a_script_added_to_a_captioned_row_updates_its_captions(captioned) -> None:
    rows = [captioned["rows"][0], row("r1", "media/face.jpg", "media/a1.wav", captions_uri="media/r1.vtt",
                                      script_text="Welcome.")]  # fmt: skip
    second = Run(rows, *captioned["args"], "run-2")
    assert second.decisions()["r1"] == UPDATE_CAPTIONS and second.why("r1").startswith("script added since run")


def test_anything_that_changes_the_frames_renders_again(captioned) -> None:
    root = captioned["root"]
    settle()
    (root / "media" / "a0.wav").write_bytes(b"other speech " * 60)
    settle()
    rows = [row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT + " New."),
            row("r1", "media/face.jpg", "media/a1.wav", captions_uri="media/r1.vtt", seed=99)]  # fmt: skip
    second = Run(rows, *captioned["args"], "run-2")
    assert second.decisions() == {"r0": WORK, "r1": WORK} and second.recaptioned == []
    assert second.why("r0") == "audio changed since run run-1"
    assert second.why("r1") == "generator or parameters changed since run run-1"


def test_captions_removed_render_again(captioned) -> None:
    rows = [row("r0", "media/face.jpg", "media/a0.wav"), captioned["rows"][1]]
    second = Run(rows, *captioned["args"], "run-2")
    assert second.decisions()["r0"] == WORK
    assert second.why("r0") == "captions removed since run run-1: rendering again"


def test_a_failed_captions_update_is_kept_until_the_script_changes(captioned) -> None:
    failing = [row("r0", "media/face.jpg", "media/a0.wav", script_text="FAIL: another row's script."),
               captioned["rows"][1]]  # fmt: skip
    assert Run(failing, *captioned["args"], "run-2").decisions()["r0"] == UPDATE_CAPTIONS
    kept = Run(failing, *captioned["args"], "run-3")
    assert kept.decisions()["r0"] == KEEP_FAILED and kept.recaptioned == []
    fixed = [row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT + " Fixed."), captioned["rows"][1]]
    retried = Run(fixed, *captioned["args"], "run-4")
    assert retried.decisions()["r0"] == UPDATE_CAPTIONS and retried.recaptioned == ["r0"]


def test_a_row_published_before_frames_keys_renders_once_when_its_script_changes(captioned) -> None:
    """An entry without a frames key cannot tell a captions-only change: rendered again, once."""
    catalog = Catalog(captioned["args"][1])
    path = catalog.path("course/en/r0.json")
    sidecar = catalog.read_json(path)
    del sidecar["frames_key"]
    catalog.write_bytes(json.dumps(sidecar).encode(), path)
    catalog.fs.rm(catalog.path("index.parquet"))
    rows = [row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT + " New."), captioned["rows"][1]]
    second = Run(rows, *captioned["args"], "run-2")
    assert second.decisions()["r0"] == WORK
    assert second.why("r0") == "generator, parameters or script changed since run run-1"


def test_the_plan_s_keys_match_the_renderer_s_with_captions() -> None:
    """The plan's fast keys (one JSON template per parameter set) equal `content_key` and
    `frames_key`, with a script, a captions file, both or neither; the frames key never moves."""
    from sonic_model.generators import RenderParams
    from tasks.plan_keys import KeyMaker

    params = RenderParams(seed=7).as_dict()
    portrait, audio, captions_file = "a" * 64, "b" * 64, hashlib.sha256(b"WEBVTT").hexdigest()
    frames = {"portrait_sha256": portrait, "audio_sha256": audio, "generator": "preview",
              "generator_version": "1.0", "params": params}  # fmt: skip
    keys = set()
    for script in (None, script_sha256(SCRIPT)):
        maker = KeyMaker(settings(), params, script)
        for file_sha in (None, captions_file):
            key = maker(portrait, audio, file_sha)
            assert key == content_key(**frames, script_sha256=script, captions_file_sha256=file_sha)
            assert maker.frames(portrait, audio) == frames_key(**frames)
            keys.add(key)
    assert len(keys) == 4 and frames_key(**frames) in keys  # no captions: the key is the frames key


# --- captions changes and burned-in captions (burn_captions) --------------------------------------


@pytest.fixture
def vertical(tmp_path: Path):
    """Two published rows with a script and a vertical rendition; r1's captions are burned in."""
    write_media(tmp_path / "media", count=2)
    (tmp_path / "media" / "r1.vtt").write_text(VTT)
    rows = [
        row("r0", "media/face.jpg", "media/a0.wav", script_text=SCRIPT, renditions="vertical"),
        row("r1", "media/face.jpg", "media/a1.wav", script_text=SCRIPT, renditions="vertical", burn_captions=True),
    ]
    settle()
    args = (str(tmp_path / "manifest.parquet"), str(tmp_path / "catalog"))
    assert Run(rows, *args, "run-1").rendered == ["r0", "r1"]
    return {"root": tmp_path, "rows": rows, "args": args}


def test_a_changed_script_of_a_row_with_burned_renditions_renders_it_again(vertical) -> None:
    """Its renditions' pictures have the old words burned in: a re-mux cannot change them."""
    rows = [dataclasses.replace(r, script_text=SCRIPT + " And more.") for r in vertical["rows"]]
    second = Run(rows, *vertical["args"], "run-2")
    assert second.decisions() == {"r0": UPDATE_CAPTIONS, "r1": WORK}  # r0's renditions have a soft track only
    assert second.why("r1") == (
        "script changed since run run-1; its renditions have the captions burned in: rendering again"
    )
    assert second.rendered == ["r1"] and second.recaptioned == ["r0"] and second.burned == []
    assert Run(rows, *vertical["args"], "run-3").decisions() == {"r0": SKIP, "r1": SKIP}


def test_burning_switched_on_with_a_changed_script_renders_again(vertical) -> None:
    """Both at once: the new words must go into pictures without the old ones, which only a
    render has (not a captions update, not a burn of the published renditions)."""
    on = dataclasses.replace(vertical["rows"][0], burn_captions=True)
    # Burning alone switched on (the script as published): burned from the published renditions.
    alone = plan_rows([on, vertical["rows"][1]], *vertical["args"], settings(), settle_s=SETTLE_S).rows[0]
    assert alone.decision == WORK and alone.burn_only and "no new frames" in alone.why
    both = dataclasses.replace(on, script_text=SCRIPT + " And more.")
    second = Run([both, vertical["rows"][1]], *vertical["args"], "run-2")
    assert second.decisions() == {"r0": WORK, "r1": SKIP}
    assert second.plan.rows[0].burn_only is None and second.plan.rows[0].captions_update is None
    assert second.why("r0") == (
        "captions to be burned in and script changed since run run-1: rendered again (new words into unburned pictures)"
    )
    assert second.rendered == ["r0"] and second.burned == []
    assert Run([both, vertical["rows"][1]], *vertical["args"], "run-3").decisions() == {"r0": SKIP, "r1": SKIP}


def test_burning_switched_on_for_a_row_whose_captions_file_changed_renders_it_again(tmp_path: Path) -> None:
    write_media(tmp_path / "media", count=1)
    (tmp_path / "media" / "r0.vtt").write_text(VTT)
    published = row("r0", "media/face.jpg", "media/a0.wav", captions_uri="media/r0.vtt", renditions="vertical")
    settle()
    args = (str(tmp_path / "manifest.parquet"), str(tmp_path / "catalog"))
    Run([published], *args, "run-1")
    (tmp_path / "media" / "r0.vtt").write_text(VTT.replace("Welcome.", "Welcome back."))
    settle()
    second = Run([dataclasses.replace(published, burn_captions=True)], *args, "run-2")
    assert second.decisions() == {"r0": WORK} and second.burned == [] and second.rendered == ["r0"]
    assert second.plan.rows[0].burn_only is None
    assert "captions to be burned in" in second.why("r0") and "rendered again" in second.why("r0")
