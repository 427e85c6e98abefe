"""The post-processing switches per row in a catalog run, and their figures in sidecar and ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import MANIFEST_SCHEMA
from tests.test_catalog_flow import ledger_of, run_cli, run_id_of

FIXTURES = Path(__file__).parent / "fixtures"


def test_rows_switch_post_processing_and_the_catalog_records_it(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(FIXTURES / "portrait_hopper.jpg", media / "hopper.jpg")
    shutil.copy(FIXTURES / "speech_en_pause_16k.wav", media / "en.wav")
    base = {
        "portrait_uri": "media/hopper.jpg",
        "audio_uri": "media/en.wav",
        "language": "en",
        "consent_ref": "release/test-001",
        "collection": "pp",
        "min_resolution": 256,
    }
    rows = [
        {**base, "row_id": "defaults"},
        {**base, "row_id": "manual-offset", "av_offset_ms": 40.0},
        {**base, "row_id": "both-off", "lipsync_calibration": False, "motion_smoothing": 0.0},
    ]
    columns = {
        name: [row.get(name) for row in rows] for name in MANIFEST_SCHEMA.names if any(name in row for row in rows)
    }
    schema = pa.schema([MANIFEST_SCHEMA.field(name) for name in columns])
    pq.write_table(pa.table(columns, schema=schema), tmp_path / "manifest.parquet")
    catalog = tmp_path / "catalog"

    code, out, err = run_cli("render", str(tmp_path / "manifest.parquet"), "--catalog", str(catalog))
    assert code == 0, out + err
    sidecars = {
        row["row_id"]: json.loads((catalog / "pp" / "en" / f"{row['row_id']}.json").read_text()) for row in rows
    }

    defaults = sidecars["defaults"]["postprocess"]
    assert defaults["lipsync_calibration"] is True and defaults["motion_smoothing"] == 2.0
    assert defaults["av_offset_measured_frames"] == 0 and defaults["av_offset_applied_ms"] == 0.0

    manual = sidecars["manual-offset"]["postprocess"]
    assert manual["av_offset_ms_requested"] == 40.0 and manual["av_offset_applied_ms"] == 40.0
    # Sound delayed by one frame: QA now sees the picture one frame early. (Two frames, 80 ms, is the
    # tolerance itself: with the preview's own lead of about half a frame QA rightly fails it.)
    assert sidecars["manual-offset"]["qa"]["figures"]["av_offset_frames"] == -1

    off = sidecars["both-off"]["postprocess"]
    assert off["lipsync_calibration"] is False and off["motion_smoothing"] == 0.0
    assert off["motion_frames_warped"] == 0 and off["av_offset_applied_ms"] == 0.0

    ledger = ledger_of(str(catalog), run_id_of(out)).set_index("row_id")
    assert ledger.loc["manual-offset", "av_offset_applied_ms"] == 40.0
    assert ledger.loc["defaults", "av_offset_measured_frames"] == 0
    assert json.loads(ledger.loc["both-off", "postprocess"])["motion_smoothing"] == 0.0
    # A different switch is a different video: each row has its own content key.
    assert len({sidecar["content_key"] for sidecar in sidecars.values()}) == 3
    assert isinstance(ledger, pd.DataFrame)


def test_out_of_range_switches_are_quarantined(tmp_path):
    from manifests.schema import ManifestRow
    from tasks.table import validate_table

    frame = pd.DataFrame(
        [
            {
                "row_id": "a",
                "portrait_uri": "p.jpg",
                "audio_uri": "a.wav",
                "language": "en",
                "consent_ref": "r",
                "motion_smoothing": 50.0,
            },
            {
                "row_id": "b",
                "portrait_uri": "p.jpg",
                "audio_uri": "a.wav",
                "language": "en",
                "consent_ref": "r",
                "av_offset_ms": 5000.0,
            },
        ]
    )
    frame.attrs["manifest_url"] = str(tmp_path / "manifest.parquet")
    good, quarantined = validate_table(frame)
    reasons = {q.row_id: q.reason for q in quarantined}
    assert "motion_smoothing 50 is out of range" in reasons["a"]
    assert "av_offset_ms 5000 is out of range" in reasons["b"]
    assert good == [] and ManifestRow  # both refused before any media is read
