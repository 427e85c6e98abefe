"""The manifest's caption columns through the real Great Expectations suite, on real Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from manifests import read_manifest
from tasks.table import validate_table


def row(row_id: str, **overrides) -> dict:
    values = {
        "row_id": row_id,
        "portrait_uri": "media/portrait.jpg",
        "audio_uri": "media/speech.wav",
        "language": "en",
        "consent_ref": "release/1",
        "script_text": "Hello and welcome.",
        "captions_uri": None,
    }
    values.update(overrides)
    return values


def test_caption_columns_are_checked(tmp_path: Path) -> None:
    rows = [
        row("ok"),
        row("ok-given", script_text=None, captions_uri="media/captions.vtt"),
        row("ok-lines", script_text="Line one.\nLine two,\tand a tab.\r\n"),
        row("ok-zh", language="zh-Hans", script_text="你好，欢迎。"),
        row("long", script_text="word " * 5000),
        row("control", script_text="bell\x07 here"),
        row("mojibake", script_text="caf\ufffd au lait"),
        row("not-captions", captions_uri="media/captions.txt"),
        row("uri-escape", captions_uri="../../etc/secret.vtt"),
        row("uri-control", captions_uri="media/a\nb.srt"),
    ]
    path = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(path)
    good, refused = validate_table(read_manifest(path))
    reasons = {q.row_id: q.reason for q in refused}
    assert sorted(r.row_id for r in good) == ["ok", "ok-given", "ok-lines", "ok-zh"]
    assert [r.script_text for r in good if r.row_id == "ok-zh"] == ["你好，欢迎。"]
    assert "script_text is 25000 characters long, use 1 to 20000" in reasons["long"]
    assert "control character(s) U+0007" in reasons["control"]
    assert "U+FFFD" in reasons["mojibake"] and "UTF-8" in reasons["mojibake"]
    assert "must name a .vtt or .srt file" in reasons["not-captions"]
    assert reasons["uri-escape"].startswith("captions_uri")
    assert "control character(s) U+000A" in reasons["uri-control"]


def test_manifest_without_caption_columns_still_validates(tmp_path: Path) -> None:
    frame = pd.DataFrame([row("plain")]).drop(columns=["script_text", "captions_uri"])
    path = tmp_path / "manifest.parquet"
    frame.to_parquet(path)
    good, refused = validate_table(read_manifest(path))
    assert refused == [] and good[0].script_text is None and good[0].captions_uri is None


def test_burn_captions_column_is_a_checked_boolean(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    pd.DataFrame([row("on", burn_captions=True), row("off", burn_captions=False), row("unset")]).to_parquet(path)
    good, refused = validate_table(read_manifest(path))
    assert refused == [] and {r.row_id: r.burn_captions for r in good} == {"on": True, "off": False, "unset": None}
    frame = pd.DataFrame([row("text", burn_captions="yes")])  # a frame a notebook hands over, not Parquet
    good, refused = validate_table(frame)
    assert good == [] and "burn_captions 'yes' is not true or false" in refused[0].reason
