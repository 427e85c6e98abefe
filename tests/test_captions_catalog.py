"""Captions through the whole catalog flow: real Prefect, Parquet, ffmpeg, eSpeak NG and C2PA.

Rows with `script_text` publish a .vtt and .srt beside the video, list them in the sidecar and
the index, and carry a mov_text track tagged with the row's language; a row whose audio is
another row's fails QA naming the script-vs-audio figure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import av
import pandas as pd
import pytest

from tests.test_captions import DE, EN
from tests.test_catalog_flow import RESOLUTION, ledger_of, run_cli, run_id_of

FIXTURES = Path(__file__).parent / "fixtures"


def speech_wav(folder: Path, name: str, voice: str, sentences: list[str]) -> str:
    path = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", f"{voice}+f2", "-s", "145", "-w", str(path), " ".join(sentences)], check=True)
    return f"media/{path.name}"


pytestmark = pytest.mark.slow  # three renders with renditions: ~100 s on 2 cores


@pytest.fixture(scope="module")
def captioned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions-flow")
    media = root / "media"
    media.mkdir()
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", media / "astronaut.jpg")
    # (Six languages, zh and ar among them, publish end to end in test_captions_languages.py.)
    audio = {"en": speech_wav(media, "en", "en", EN), "de": speech_wav(media, "de", "de", DE)}

    def row(row_id, language, audio_uri, script):
        return {"row_id": row_id, "portrait_uri": "media/astronaut.jpg", "audio_uri": audio_uri,
                "language": language, "consent_ref": "release/test-001", "collection": "course", "item_id": "lesson-1",
                "min_resolution": RESOLUTION, "renditions": "vertical", "script_text": " ".join(script)}  # fmt: skip

    rows = [
        row("cap-en", "en", audio["en"], EN),
        row("cap-de", "de", audio["de"], DE),
        row("swapped-de", "de", audio["en"], DE),  # the German script over the English row's audio
    ]
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    catalog = root / "catalog"
    # Let the media settle: a file written in the last 2 s is hashed, its fingerprint not kept, and
    # the later burn-only run then renders the row again (it failed so with a warm Prefect server).
    time.sleep(2.1)
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog), "--concurrency", "2")
    return {"catalog": catalog, "code": code, "out": out, "err": err, "run_id": run_id_of(out)}


def test_captioned_rows_publish_vtt_srt_and_a_tagged_track(captioned_run) -> None:
    catalog = captioned_run["catalog"]
    ledger = ledger_of(str(catalog), captioned_run["run_id"]).set_index("row_id")
    assert ledger.loc["cap-en", "status"] == "published", ledger.loc["cap-en"].to_dict()
    assert ledger.loc["cap-de", "status"] == "published", ledger.loc["cap-de"].to_dict()
    for row_id, language, iso in (("cap-en", "en", "eng"), ("cap-de", "de", "deu")):
        prefix = catalog / "course" / language / row_id
        sidecar = json.loads(prefix.with_suffix(".json").read_text())
        captions = sidecar["captions"]
        assert captions["method"] == "espeak-dtw" and captions["script_match"] > 1.5
        assert captions["track"] == {"codec": "mov_text", "language": iso}
        vtt = (catalog / captions["vtt"]).read_text()
        assert vtt.startswith(f"WEBVTT\nLanguage: {language}\n") and "-->" in vtt
        assert (catalog / captions["srt"]).read_text().startswith("1\n00:00:")
        for video in [prefix.with_suffix(".mp4"), Path(f"{prefix}.vertical.mp4")]:
            with av.open(str(video)) as container:
                tracks = [(s.codec_context.name, s.metadata.get("language")) for s in container.streams.subtitles]
            assert tracks == [("mov_text", iso)], video
    index = pd.read_parquet(catalog / "index.parquet").set_index("key")
    assert index.loc["course/en/cap-en", "captions"] == "course/en/cap-en.vtt"


def test_swapped_audio_fails_qa_naming_the_figure(captioned_run) -> None:
    ledger = ledger_of(str(captioned_run["catalog"]), captioned_run["run_id"]).set_index("row_id")
    assert ledger.loc["swapped-de", "status"] == "failed_qa"
    assert "script-vs-audio match" in ledger.loc["swapped-de", "reason"]
    # Its item's English row has the script this audio speaks: named (sonic_model/captions/swaps.py).
    assert "the audio speaks the script of row 'cap-en' better" in ledger.loc["swapped-de", "reason"]


def test_report_shows_each_row_s_captions_figure(captioned_run) -> None:
    report = (captioned_run["catalog"] / "_runs" / captioned_run["run_id"] / "report.html").read_text()
    assert report.count("script-vs-audio match") >= 3  # two published rows' notes + the failed row


def test_switching_burning_on_burns_the_published_renditions_without_new_frames(captioned_run) -> None:
    """(Last in this module: it runs the catalog again.) `burn_captions` switched on for one
    published row: its renditions are made again from the published ones, its master is kept."""
    import hashlib

    from sonic_model.credentials import read_credentials

    catalog, first = captioned_run["catalog"], captioned_run["run_id"]
    prefix = catalog / "course" / "de" / "cap-de"
    master_before = hashlib.sha256(prefix.with_suffix(".mp4").read_bytes()).hexdigest()
    vertical = Path(f"{prefix}.vertical.mp4")
    vertical_before = hashlib.sha256(vertical.read_bytes()).hexdigest()
    key_before = json.loads(prefix.with_suffix(".json").read_text())["content_key"]
    manifest = catalog.parent / "manifest.parquet"
    table = pd.read_parquet(manifest)
    table["burn_captions"] = [None, True, None]  # cap-de only
    table.to_parquet(manifest)

    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog))
    assert code == 2, (out, err)  # the swapped row's QA failure is kept: not every row is published
    ledger = ledger_of(str(catalog), run_id_of(out)).set_index("row_id")
    row = ledger.loc["cap-de"]
    assert row["status"] == "published" and "no new frames" in row["plan"], row.to_dict()
    assert "render_s" not in json.loads(row["timings"]) and "burn_s" in json.loads(row["timings"])
    assert ledger.loc["cap-en", "status"] == "skipped_cached" and ledger.loc["swapped-de", "status"] == "failed_qa"

    sidecar = json.loads(prefix.with_suffix(".json").read_text())
    assert sidecar["content_key"] != key_before and sidecar["generator"]["params"]["burn_captions"] is True
    assert sidecar["burned_captions"] == {
        "renditions": ["vertical"], "language": "de", "font": "Noto Sans", "note": None, "from_run": first,
    }  # fmt: skip
    assert sidecar["renditions"][0]["captions_burned"] is True
    assert hashlib.sha256(prefix.with_suffix(".mp4").read_bytes()).hexdigest() == master_before  # kept
    assert hashlib.sha256(vertical.read_bytes()).hexdigest() != vertical_before
    with av.open(str(vertical)) as container:
        assert not container.streams.subtitles and container.metadata.get("captions_burned") == "true"
    assert read_credentials(vertical).status == "valid"
    index = pd.read_parquet(catalog / "index.parquet").set_index("key")
    assert index.loc["course/de/cap-de", "content_key"] == sidecar["content_key"]

    code, out, _ = run_cli("render", str(manifest), "--catalog", str(catalog))  # nothing changed since
    ledger = ledger_of(str(catalog), run_id_of(out)).set_index("row_id")
    assert ledger.loc["cap-de", "status"] == "skipped_cached", ledger.loc["cap-de"].to_dict()
