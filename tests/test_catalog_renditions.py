"""Renditions, presets and the loudness target through the catalog flow: each rendition is
published beside its master, listed in the sidecar and the index, QA'd on its own, shown in
the report; a failed rendition fails its row with a reason naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sonic_model.video_reader import probe_video
from tests.test_catalog_flow import ledger_of, run_cli, run_id_of

FIXTURES = Path(__file__).parent / "fixtures"


def write_manifest(root: Path) -> Path:
    media = root / "media"
    media.mkdir(parents=True)
    shutil.copy(FIXTURES / "landscape_offcentre.jpg", media / "landscape.jpg")
    shutil.copy(FIXTURES / "portrait_hopper.jpg", media / "hopper.jpg")
    shutil.copy(FIXTURES / "speech_en_pause_16k.wav", media / "en.wav")
    rows = [
        # A row preset with one of its settings overridden by the row's own column.
        {
            "row_id": "shorts",
            "portrait_uri": "media/landscape.jpg",
            "audio_uri": "media/en.wav",
            "language": "en",
            "consent_ref": "release/test-001",
            "collection": "course",
            "min_resolution": 256,
            "renditions": "vertical",
            "preset": "fast",
        },
        {
            "row_id": "plain",
            "portrait_uri": "media/hopper.jpg",
            "audio_uri": "media/en.wav",
            "language": "en",
            "consent_ref": "release/test-002",
            "collection": "course",
            "min_resolution": 256,
            "renditions": None,
            "preset": None,
        },
    ]
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    return manifest


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog-renditions")
    manifest = write_manifest(root)
    catalog = root / "catalog"
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog), "--loudness-target", "-16")
    return {"catalog": catalog, "code": code, "out": out, "err": err, "run_id": run_id_of(out), "manifest": manifest}


def test_rendition_is_published_beside_its_master_and_listed_in_the_sidecar(run):
    assert run["code"] == 0, run["out"] + run["err"]
    stem = run["catalog"] / "course" / "en" / "shorts"
    vertical = stem.with_name("shorts.vertical.mp4")
    info = probe_video(vertical)
    assert (info.width, info.height) == (1080, 1920)
    sidecar = json.loads(stem.with_suffix(".json").read_text())
    (entry,) = sidecar["renditions"]
    assert entry["name"] == "vertical" and entry["video"] == "course/en/shorts.vertical.mp4"
    assert (entry["width"], entry["height"]) == (1080, 1920)
    # QA'd on its own: passed, with its own seam, loudness and sync figures.
    assert entry["qa"]["passed"] is True
    figures = entry["qa"]["figures"]
    assert figures["seam_strength"] < 8 and figures["width"] == 1080 and figures["loudness_target_lufs"] == -16.0
    assert abs(figures["loudness_lufs"] + 16) <= 1.0
    # The preset is named in the sidecar; its settings applied except the row's own min_resolution.
    params = sidecar["generator"]["params"]
    assert sidecar["preset"] == "fast" and params["preset"] == "fast"
    assert params["inference_steps"] == 12 and params["min_resolution"] == 256
    assert sidecar["loudness"]["target_lufs"] == -16.0
    # Signed on its own (C2PA): its own manifest, naming the rendition, bound to its own bytes.
    from sonic_model.credentials import read_credentials

    claims = read_credentials(vertical)
    assert claims.status == "valid" and claims.ai_generated
    assert claims.sonic["rendition"] == "vertical" and claims.sonic["row_id"] == "shorts"
    assert entry["credentials"]["manifest_label"] == claims.manifest_label != sidecar["credentials"]["manifest_label"]
    plain = json.loads((run["catalog"] / "course" / "en" / "plain.json").read_text())
    assert plain["renditions"] == [] and plain["preset"] is None


def test_index_has_one_entry_per_rendition(run):
    index = pd.read_parquet(run["catalog"] / "index.parquet")
    shorts = index[index.row_id == "shorts"].set_index("rendition")
    assert set(shorts.index) == {"master", "vertical"}
    assert (shorts.loc["vertical", "width"], shorts.loc["vertical", "height"]) == (1080, 1920)
    assert shorts.loc["vertical", "video"] == "course/en/shorts.vertical.mp4"
    assert shorts.loc["master", "width"] == 256
    assert list(index[index.row_id == "plain"].rendition) == ["master"]
    assert all((run["catalog"] / video).exists() for video in index.video)


def test_report_and_ledger_show_the_renditions(run):
    report = (run["catalog"] / "_runs" / run["run_id"] / "report.html").read_text()
    assert "vertical 1080x1920" in report and "../../course/en/shorts.vertical.mp4" in report
    ledger = ledger_of(str(run["catalog"]), run["run_id"])
    renditions = json.loads(ledger.set_index("row_id").loc["shorts", "renditions"])
    assert [r["name"] for r in renditions] == ["vertical"] and renditions[0]["passed"] is True


def test_same_manifest_again_is_cached_and_a_missing_rendition_renders_again(run):
    code, out, err = run_cli(
        "render", str(run["manifest"]), "--catalog", str(run["catalog"]), "--loudness-target", "-16"
    )
    assert code == 0, out + err
    ledger = ledger_of(str(run["catalog"]), run_id_of(out))
    assert set(ledger.status) == {"skipped_cached"}
    # A skipped row lists its renditions as a rendered one does: name, size, file.
    (skipped,) = json.loads(ledger.set_index("row_id").loc["shorts", "renditions"])
    assert (skipped["name"], skipped["width"], skipped["height"]) == ("vertical", 1080, 1920)
    assert skipped["uri"].endswith("course/en/shorts.vertical.mp4")
    (run["catalog"] / "course" / "en" / "shorts.vertical.mp4").unlink()
    code, out, err = run_cli(
        "render", str(run["manifest"]), "--catalog", str(run["catalog"]), "--loudness-target", "-16"
    )
    assert code == 0, out + err
    ledger = ledger_of(str(run["catalog"]), run_id_of(out)).set_index("row_id")
    assert (ledger.loc["shorts", "status"], ledger.loc["plain", "status"]) == ("published", "skipped_cached")
    assert (run["catalog"] / "course" / "en" / "shorts.vertical.mp4").exists()


def test_a_failed_rendition_fails_its_row_naming_the_rendition(tmp_path):
    manifest = write_manifest(tmp_path)
    catalog = tmp_path / "catalog"
    # Only composited videos have a seam figure: an impossible seam threshold fails the
    # vertical rendition and not the (crop) master.
    code, out, err = run_cli(
        "render", str(manifest), "--catalog", str(catalog), "--qa-threshold", "max_seam_strength=-1"
    )
    assert code == 2, out + err
    ledger = ledger_of(str(catalog), run_id_of(out)).set_index("row_id")
    failed = ledger.loc["shorts"]
    assert failed.status == "failed_qa"
    assert failed.reason.startswith("vertical rendition: visible seam where the animated face was composited")
    assert ledger.loc["plain", "status"] == "published"
    assert not (catalog / "course" / "en" / "shorts.vertical.mp4").exists()
    rejected = [json.loads(failed.renditions)[0]["uri"]]
    assert "/_runs/" in rejected[0] and Path(rejected[0]).exists()
    assert set(pd.read_parquet(catalog / "index.parquet").row_id) == {"plain"}
