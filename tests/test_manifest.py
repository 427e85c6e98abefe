"""The manifest: schema, reader (run-level errors), URI resolution, CSV conversion, the example."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests import (
    MANIFEST_SCHEMA,
    REQUIRED_COLUMNS,
    ManifestError,
    ManifestRow,
    manifest_from_csv,
    read_manifest,
    resolve_uri,
)
from manifests.schema import NAN_CELLS_ATTR
from sonic_catalog.cli import main
from sonic_model.errors import ParameterError
from sonic_model.generators import RenderParams

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"
EXAMPLE = EXAMPLES / "catalog.parquet"


def _good_row(**overrides) -> dict:
    row = {
        "row_id": "r1",
        "portrait_uri": "media/presenter_astronaut.jpg",
        "audio_uri": "media/script_en.wav",
        "language": "en",
        "consent_ref": "release/2026/astronaut-001",
    }
    row.update(overrides)
    return row


def test_schema_lists_required_and_optional_columns():
    names = MANIFEST_SCHEMA.names
    assert names[:5] == list(REQUIRED_COLUMNS)
    optional = "duration_s collection item_id title min_resolution expand_ratio inference_steps dynamic_scale"
    for name in (*optional.split(), "motion_scale", "seed"):
        assert name in names
    assert all(not MANIFEST_SCHEMA.field(name).nullable for name in REQUIRED_COLUMNS)


def test_example_manifest_is_multilingual_with_relative_uris_and_consent():
    frame = read_manifest(EXAMPLE)
    assert len(frame) >= 5
    assert frame["portrait_uri"].nunique() >= 2
    assert frame["language"].str.split("-").str[0].nunique() >= 4
    assert frame["consent_ref"].str.startswith("release/2026/").all()
    assert frame["collection"].notna().all() and frame["item_id"].notna().all() and frame["title"].notna().all()
    for uri in frame["portrait_uri"].tolist() + frame["audio_uri"].tolist():
        assert not Path(uri).is_absolute() and (EXAMPLES / uri).is_file()
    assert str(frame["min_resolution"].dtype) == "Int64" and str(frame["duration_s"].dtype) == "float64"


def test_example_rows_say_their_scripts():
    # The demo publishes captions from script_text; each example file must say its row's script
    # (manifests/examples/make_speech.py made them), or the demo's QA would fail it.
    from sonic_model.audio import load_audio, speech_segments
    from sonic_model.captions import check_captions, make_captions

    frame = read_manifest(EXAMPLE)
    assert frame["script_text"].notna().all()
    for row in frame.itertuples():
        clip = load_audio(EXAMPLES / row.audio_uri)
        captions = make_captions(row.script_text, row.language, clip.samples, speech_segments(clip))
        assert captions.method == "espeak-dtw" and check_captions(captions) == [], (row.row_id, captions)


def test_example_parquet_is_the_csv_converted(tmp_path):
    out = tmp_path / "again.parquet"
    assert manifest_from_csv(EXAMPLES / "catalog.csv", out) == len(read_manifest(EXAMPLE))
    pd.testing.assert_frame_equal(read_manifest(out), read_manifest(EXAMPLE))


def test_read_manifest_refuses_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "manifest.parquet"
    path.write_text("row_id,portrait_uri\nr1,a.jpg\n")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        read_manifest(path)


def test_read_manifest_refuses_a_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.parquet")


def test_read_manifest_names_missing_required_columns(tmp_path):
    path = tmp_path / "m.parquet"
    row = _good_row()
    del row["consent_ref"], row["language"]
    pd.DataFrame([row]).to_parquet(path)
    with pytest.raises(ManifestError, match="lacks required column.*language, consent_ref"):
        read_manifest(path)


def test_read_manifest_refuses_an_empty_manifest(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({name: pa.array([], pa.string()) for name in REQUIRED_COLUMNS}), path)
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(path)


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("seed", ["abc"], "'seed' has type (large_)?string and cannot be safely converted to int64"),
        ("min_resolution", [512.5], "'min_resolution' has type double and cannot be safely converted"),
        ("consent_ref", [123], "'consent_ref' has type int64, expected text"),
    ],
)
def test_read_manifest_refuses_column_types_that_cannot_be_cast_safely(tmp_path, column, values, message):
    path = tmp_path / "m.parquet"
    pd.DataFrame([_good_row(**{column: values[0]})]).to_parquet(path)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_read_manifest_casts_safe_types_and_keeps_nan_apart_from_null(tmp_path):
    path = tmp_path / "m.parquet"
    table = pa.table(
        {
            **{name: pa.array([_good_row()[name]] * 3) for name in REQUIRED_COLUMNS},
            "seed": pa.array([1, None, 3], pa.int32()),
            "duration_s": pa.array([1.5, None, float("nan")], pa.float32()),
            "extra_key": pa.array(["a", "b", "c"]),
        }
    )
    pq.write_table(table, path)
    frame = read_manifest(f"file://{path}")
    assert frame["seed"].tolist()[0] == 1 and pd.isna(frame["seed"].tolist()[1])
    assert frame.attrs[NAN_CELLS_ATTR] == {"duration_s": [2]}
    assert "extra_key" in frame.columns


def test_read_manifest_through_fsspec_memory():
    import fsspec

    with fsspec.open("memory://manifests-test/m.parquet", "wb") as handle:
        pd.DataFrame([_good_row()]).to_parquet(handle)
    frame = read_manifest("memory://manifests-test/m.parquet")
    assert frame["row_id"].tolist() == ["r1"]


def test_resolve_uri_joins_relative_paths_to_the_manifest_folder():
    assert resolve_uri("/data/cat/m.parquet", "media/a.jpg") == "/data/cat/media/a.jpg"
    assert resolve_uri("/data/cat/m.parquet", "../../etc/passwd") == "/etc/passwd"
    assert resolve_uri("file:///data/cat/m.parquet", "a.wav") == "/data/cat/a.wav"
    assert resolve_uri("s3://bucket/cat/m.parquet", "media/a.jpg") == "s3://bucket/cat/media/a.jpg"
    assert resolve_uri("memory://cat/m.parquet", "./x/../a.jpg") == "memory://cat/a.jpg"
    assert resolve_uri("/data/cat/m.parquet", "gs://b/a.jpg") == "gs://b/a.jpg"
    assert resolve_uri("/data/cat/m.parquet", "/abs/a.jpg") == "/abs/a.jpg"


def test_row_render_params_apply_overrides_over_run_defaults():
    row = ManifestRow(**_good_row(), seed=7, dynamic_scale=1.5)
    params = row.render_params(RenderParams(min_resolution=384, seed=1))
    assert (params.min_resolution, params.seed, params.dynamic_scale, params.motion_scale) == (384, 7, 1.5, 1.0)
    with pytest.raises(ParameterError, match="expand_ratio"):
        ManifestRow(**_good_row(), expand_ratio=9.0).render_params()


def test_manifest_row_from_record_turns_missing_values_into_none():
    row = ManifestRow.from_record({**_good_row(), "seed": 3.0, "duration_s": math.nan, "title": None})
    assert row.seed == 3 and isinstance(row.seed, int) and row.duration_s is None and row.title is None


def test_cli_manifest_from_csv_writes_parquet(tmp_path, capsys):
    csv = tmp_path / "c.csv"
    csv.write_text(
        "row_id,portrait_uri,audio_uri,language,consent_ref,seed\nr1,a.jpg,a.wav,en,rel/1,\nr2,a.jpg,b.wav,de,rel/2,5\n"
    )
    out = tmp_path / "m.parquet"
    assert main(["manifest", "from-csv", str(csv), "--out", str(out)]) == 0
    assert "2 rows" in capsys.readouterr().out
    frame = read_manifest(out)
    assert frame["seed"].tolist()[1] == 5 and pd.isna(frame["seed"].tolist()[0])


def test_cli_manifest_from_csv_names_a_column_that_cannot_convert(tmp_path, capsys):
    csv = tmp_path / "c.csv"
    csv.write_text("row_id,portrait_uri,audio_uri,language,consent_ref,seed\nr1,a.jpg,a.wav,en,rel/1,seven\n")
    assert main(["manifest", "from-csv", str(csv), "--out", str(tmp_path / "m.parquet")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: CSV cannot be converted")
        and "column 'seed' must hold int64" in err
        and err.count("\n") == 1
    )
