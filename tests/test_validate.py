"""Validation on real Parquet, the real Great Expectations suite and real media.

Bad media is generated into tmp_path here; good media comes from tests/fixtures and the
example manifest's folder.
"""

from __future__ import annotations

import io
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from manifests import ManifestError, ManifestRow, read_manifest
from sonic_catalog.cli import main
from sonic_model.errors import (
    AmbiguousFaceError,
    AudioError,
    AudioTooShortError,
    DurationMismatchError,
    ImageError,
    InputError,
    MediaErrors,
    MediaNotFoundError,
    MediaTooLargeError,
    NoFaceError,
    NoSpeechError,
    UriNotAllowedError,
)
from tasks.limits import MediaLimits
from tasks.probe import probe_media, probe_or_quarantine, probe_row_task
from tasks.records import ProbedRow, Quarantine
from tasks.storage import check_uri_allowed, default_roots, materialize, read_bytes
from tasks.table import validate_table

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MEDIA = ROOT / "manifests" / "examples" / "media"
EXAMPLE = ROOT / "manifests" / "examples" / "catalog.parquet"


def good(row_id: str = "ok-1", **overrides) -> dict:
    row = {
        "row_id": row_id,
        "portrait_uri": "media/portrait.jpg",
        "audio_uri": "media/speech.wav",
        "language": "en",
        "consent_ref": "release/2026/astronaut-001",
    }
    row.update(overrides)
    return row


def reasons_by_id(quarantined: list[Quarantine]) -> dict[str, str]:
    return {q.row_id: q.reason for q in quarantined}


# --- the table --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_table_result(tmp_path_factory):
    """One Parquet manifest with every table-level fault next to good rows, validated once."""
    folder = tmp_path_factory.mktemp("table")
    rows = [
        good("ok-1"),
        good("ok-2", language="zh-Hans", seed=7, min_resolution=384, duration_s=3.5),
        good("ok-3", portrait_uri="./media/../media/p.jpg", language="es-419"),
        good("remote-outside", portrait_uri="s3://bucket/p.jpg"),
        good("no-consent", consent_ref=None),
        good("empty-consent", consent_ref=""),
        good("space-consent", consent_ref="   "),
        good("dup"),
        good("dup"),
        good("bad-lang", language="english"),
        good("http", portrait_uri="http://example.com/p.jpg"),
        good("ftp", audio_uri="ftp://example.com/a.wav"),
        good("creds", portrait_uri="s3://AKIAEXAMPLE:supersecret@bucket/p.jpg"),
        good("escape", audio_uri="../../etc/passwd"),
        good("abs-outside", portrait_uri="file:///etc/passwd"),
        good("seed-range", seed=-1),
        good("steps-range", inference_steps=500),
        good("scale-range", dynamic_scale=3.0, motion_scale=0.1),
        good("expand-range", expand_ratio=5.0),
        good("res-range", min_resolution=4096),
        good("neg-duration", duration_s=-2.0),
        good("nan-duration", duration_s=float("nan")),
        good("a/b"),
        good("x..y"),
        good("r" * 300),
        good("café"),
        good(None),
        good("many", consent_ref=None, language="??", seed=2**40, audio_uri="../../../x.wav"),
        good("inf-duration", duration_s=float("inf")),
        good("no-portrait", portrait_uri=None),
    ]
    path = folder / "manifest.parquet"
    frame = pd.DataFrame(rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # A real NaN (not a null) in Parquet: what a script writing float('nan') produces, and the
    # case read_manifest must tell apart from an empty cell.
    durations = pa.array([r.get("duration_s") for r in rows], pa.float64())
    table = table.set_column(table.schema.get_field_index("duration_s"), "duration_s", durations)
    pq.write_table(table, path)
    df = read_manifest(path)
    return validate_table(df)


def test_good_rows_pass_the_table_checks(bad_table_result):
    rows, _ = bad_table_result
    assert [r.row_id for r in rows] == ["ok-1", "ok-2", "ok-3"]
    ok2 = rows[1]
    assert isinstance(ok2, ManifestRow) and ok2.seed == 7 and ok2.min_resolution == 384 and ok2.duration_s == 3.5
    assert ok2.render_params().seed == 7


@pytest.mark.parametrize(
    "row_id, expected",
    [
        ("no-consent", "consent_ref is missing"),
        ("empty-consent", "consent_ref is empty"),
        ("space-consent", "consent_ref is only whitespace"),
        ("bad-lang", "language 'english' is not a BCP-47 tag"),
        ("http", "portrait_uri: URI scheme 'http' is not allowed"),
        ("ftp", "audio_uri: URI scheme 'ftp' is not allowed"),
        ("creds", "URI carries credentials"),
        ("escape", "is outside the allowed roots"),
        ("abs-outside", "path /etc/passwd is outside the allowed roots"),
        ("seed-range", "seed -1 is out of range, allowed 0 to 4.29497e+09"),
        ("steps-range", "inference_steps 500 is out of range, allowed 1 to 100"),
        ("expand-range", "expand_ratio 5 is out of range, allowed 0 to 2"),
        ("res-range", "min_resolution 4096 is out of range, allowed 64 to 1024"),
        ("neg-duration", "duration_s -2 must be a positive number of seconds"),
        ("nan-duration", "duration_s is NaN"),
        ("inf-duration", "duration_s is infinite"),
        ("a/b", "row_id 'a/b' has '/'"),
        ("x..y", "row_id 'x..y' contains '..'"),
        ("r" * 300, "row_id is 300 characters long, use 1 to 128"),
        ("café", "row_id 'café' has 'é'"),
        ("<row 27>", "row_id is missing"),
        ("remote-outside", "s3://bucket/p.jpg is outside the allowed roots"),
        ("no-portrait", "portrait_uri is missing"),
    ],
)
def test_each_table_fault_gets_its_specific_reason(bad_table_result, row_id, expected):
    _, quarantined = bad_table_result
    reasons = reasons_by_id(quarantined)
    assert row_id in reasons, sorted(reasons)
    assert expected in reasons[row_id]
    assert all(q.stage == "validate" for q in quarantined)


def test_both_duplicates_are_quarantined_naming_the_duplicate(bad_table_result):
    _, quarantined = bad_table_result
    dups = [q for q in quarantined if q.row_id == "dup"]
    assert len(dups) == 2
    assert all("duplicate row_id 'dup' (appears 2 times)" in q.reason for q in dups)


def test_a_row_gets_all_its_reasons_joined(bad_table_result):
    reasons = reasons_by_id(bad_table_result[1])["many"].split("; ")
    (many,) = [q for q in bad_table_result[1] if q.row_id == "many"]
    assert list(many.reasons) == reasons  # kept apart in the record, joined only when written out
    assert any(r.startswith("consent_ref is missing") for r in reasons)
    assert any(r.startswith("language '??'") for r in reasons)
    assert any(r.startswith("seed 1.09951e+12 is out of range") for r in reasons)
    assert any(r.startswith("audio_uri '../../../x.wav': path /") and "outside the allowed roots" in r for r in reasons)
    assert len(reasons) == 4


def test_credentials_never_appear_in_reasons(bad_table_result):
    assert all("supersecret" not in q.reason for q in bad_table_result[1])


def test_distinct_causes_never_share_a_message(bad_table_result):
    reasons = reasons_by_id(bad_table_result[1])
    reasons.pop("empty-consent")  # same cause as space-consent: a consent with no text
    reasons.pop("dup")
    assert len(set(reasons.values())) == len(reasons)


def test_scheme_allow_list_is_configurable():
    frame = pd.DataFrame([good("s3-row", portrait_uri="s3://bucket/p.jpg"), good("local-row")])
    rows, quarantined = validate_table(frame, allowed_schemes=("",))
    assert [r.row_id for r in rows] == ["local-row"]
    assert "URI scheme 's3' is not allowed" in quarantined[0].reason


def test_wrong_value_types_in_a_frame_are_row_reasons_not_crashes():
    frame = pd.DataFrame(
        [
            good("t1", seed="seven"),
            good("t2", language=12),
            good("t3"),
            good("t4", consent_ref=["a"]),
            good("t5", audio_uri=b"x"),
        ]
    )
    rows, quarantined = validate_table(frame)
    reasons = reasons_by_id(quarantined)
    assert [r.row_id for r in rows] == ["t3"]
    assert "consent_ref must be text, got list ['a']" in reasons["t4"]
    assert "audio_uri must be text, got bytes b'x'" in reasons["t5"]
    assert "seed must be a number, got str 'seven'" in reasons["t1"]
    assert "language must be text, got int 12" in reasons["t2"]


def test_validate_table_refuses_frames_without_required_columns_or_rows():
    with pytest.raises(ManifestError, match="lacks required column.*consent_ref"):
        validate_table(pd.DataFrame([{k: v for k, v in good().items() if k != "consent_ref"}]))
    with pytest.raises(ManifestError, match="no rows"):
        validate_table(pd.DataFrame(columns=list(good())))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "row_id": st.one_of(st.none(), st.text(max_size=20)),
                "portrait_uri": st.one_of(
                    st.none(), st.text(max_size=30), st.sampled_from(["http://x/y", "../../a", "s3://b/k"])
                ),
                "audio_uri": st.one_of(st.none(), st.text(max_size=30)),
                "language": st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["en", "zh-Hans", "x"])),
                "consent_ref": st.one_of(st.none(), st.text(max_size=10)),
                "seed": st.one_of(st.none(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True)),
                "duration_s": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_random_tables_never_raise_and_every_row_gets_a_verdict(records):
    rows, quarantined = validate_table(pd.DataFrame(records), manifest_url="/tmp/hypothesis/manifest.parquet")
    assert len(rows) + len(quarantined) == len(records)
    assert all(q.reason for q in quarantined)


# --- storage ----------------------------------------------------------------------------------


def test_symlink_resolving_outside_the_roots_is_refused(tmp_path):
    inside, outside = tmp_path / "catalog", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"x")
    os.symlink(outside / "secret.wav", inside / "link.wav")
    with pytest.raises(
        UriNotAllowedError, match="symlink .* resolving to .*elsewhere/secret.wav, outside the allowed roots"
    ):
        check_uri_allowed(str(inside / "link.wav"), allowed_roots=[str(inside)])
    assert check_uri_allowed(str(inside / "sub" / ".." / "a.wav"), allowed_roots=[str(inside)]) == str(inside / "a.wav")


def test_object_store_roots_and_dot_dot_segments():
    roots = default_roots("s3://bucket/cat/manifest.parquet")
    assert check_uri_allowed("s3://bucket/cat/media/a.jpg", allowed_roots=roots) == "s3://bucket/cat/media/a.jpg"
    with pytest.raises(UriNotAllowedError, match="outside the allowed roots"):
        check_uri_allowed("s3://bucket/other/a.jpg", allowed_roots=roots)
    with pytest.raises(UriNotAllowedError, match="'..' segment"):
        check_uri_allowed("s3://bucket/cat/../other/a.jpg", allowed_roots=roots)


def test_chained_fsspec_urls_are_refused():
    with pytest.raises(UriNotAllowedError, match="chained fsspec URLs"):
        check_uri_allowed("/data/cat/a.wav::memory://x/a.wav", allowed_roots=["/data/cat"])


def test_read_bytes_enforces_the_size_limit_and_reports_missing_objects(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"0123456789")
    assert read_bytes(str(path), 10) == b"0123456789"
    with pytest.raises(MediaTooLargeError, match="over the file-size limit"):
        read_bytes(str(path), 9)
    with pytest.raises(MediaNotFoundError, match="not found"):
        read_bytes(str(tmp_path / "missing.wav"), 10)


def test_materialize_uses_local_files_in_place_and_copies_remote_ones(tmp_path):
    import fsspec

    local = tmp_path / "a.wav"
    local.write_bytes(b"abc")
    assert materialize(str(local), tmp_path / "scratch") == local
    with fsspec.open("memory://materialize-test/clip.wav", "wb") as handle:
        handle.write(b"remote")
    copied = materialize("memory://materialize-test/clip.wav", tmp_path / "scratch")
    assert copied.read_bytes() == b"remote" and copied.suffix == ".wav" and copied.parent == tmp_path / "scratch"


# --- media probes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    """A manifest folder with good media and generated bad media."""
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", folder / "portrait.jpg")
    shutil.copy(FIXTURES / "speech_en_16k.wav", folder / "speech.wav")
    shutil.copy(FIXTURES / "speech_fr_48k.m4a", folder / "speech.m4a")
    jpeg = (FIXTURES / "portrait_astronaut.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "text.wav").write_text("this is not audio either\n")
    from skimage import data

    Image.fromarray(data.coffee()).save(folder / "coffee.jpg")
    astronaut = Image.open(FIXTURES / "portrait_astronaut.jpg").convert("RGB")
    hopper = Image.open(FIXTURES / "portrait_hopper.jpg").convert("RGB").resize(astronaut.size)
    # Same-size faces side by side: ambiguous. A face with a much smaller one beside it: the
    # large one is the subject (hopper's face is ~4x the astronaut's at these sizes).
    twins = Image.new("RGB", (astronaut.width * 2, astronaut.height))
    twins.paste(astronaut, (0, 0))
    twins.paste(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (astronaut.width, 0))
    twins.save(folder / "two_people.jpg")
    pair = Image.new("RGB", (astronaut.width * 2, astronaut.height))
    pair.paste(astronaut, (0, 0))
    pair.paste(hopper, (astronaut.width, 0))
    pair.save(folder / "big_and_small_face.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "empty.wav").write_bytes(b"")
    Image.new("RGB", (32, 32), "gray").save(folder / "tiny.png")
    # A decompression bomb: 20000x20000 pixels claimed, a few kB on disk (1-bit mode keeps the
    # test's own memory small); it must be refused from the header, before decoding.
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")
    clip = (FIXTURES / "speech_en_16k.wav").read_bytes()
    with wave.open(io.BytesIO(clip)) as source:
        params, frames = source.getparams(), source.readframes(160)  # 10 ms at 16 kHz
    with wave.open(str(folder / "ten_ms.wav"), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    with wave.open(str(folder / "silence.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(16000 * 2, np.int16).tobytes())
    return folder


def probe(folder: Path, limits: MediaLimits = MediaLimits(), **overrides) -> ProbedRow:
    row = ManifestRow(**good(**{"portrait_uri": "portrait.jpg", "audio_uri": "speech.wav", **overrides}))
    return probe_media(row, str(folder / "manifest.parquet"), limits)


def test_probe_good_row_returns_what_the_renderer_needs(media_dir):
    result = probe(media_dir, duration_s=None, seed=9)
    assert result.portrait_uri == str(media_dir / "portrait.jpg") and Path(result.audio_uri).is_absolute()
    x, y, w, h = result.face_box
    assert w > 50 and h > 50 and 0 <= x < 512 and 0 <= y < 512
    assert len(result.portrait_sha256) == 64 and len(result.audio_sha256) == 64
    assert result.params.seed == 9
    import json

    assert json.loads(json.dumps(result.as_dict()))["row"]["row_id"] == "ok-1"
    declared = probe(media_dir, duration_s=round(result.audio_duration_s + 0.05, 2))
    assert declared.audio_duration_s == result.audio_duration_s


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"portrait_uri": "truncated.jpg"}, ImageError, "portrait is truncated or corrupt"),
        ({"portrait_uri": "text.jpg"}, ImageError, "portrait is not a readable image"),
        ({"portrait_uri": "coffee.jpg"}, NoFaceError, "no face found in the 600x400 portrait"),
        ({"portrait_uri": "two_people.jpg"}, AmbiguousFaceError, "presenter is ambiguous"),
        ({"audio_uri": "text.wav"}, AudioError, "audio cannot be decoded"),
        ({"audio_uri": "silence.wav"}, NoSpeechError, "no speech found in the 2.0 s audio"),
        ({"portrait_uri": "empty.jpg"}, ImageError, "portrait is an empty file"),
        ({"portrait_uri": "tiny.png"}, ImageError, "portrait is 32x32, too small"),
        ({"portrait_uri": "bomb.png"}, ImageError, "portrait is 20000x20000 = 400.0 MP, over the limit"),
        ({"audio_uri": "empty.wav"}, AudioError, "audio is an empty file"),
        ({"audio_uri": "ten_ms.wav"}, AudioTooShortError, "audio is 10 ms long, shorter than the minimum"),
        ({"audio_uri": "missing.wav"}, MediaNotFoundError, "audio_uri 'missing.wav': not found"),
        ({"audio_uri": "../../../etc/passwd"}, UriNotAllowedError, "is outside the allowed roots"),
        ({"portrait_uri": "http://example.com/p.jpg"}, UriNotAllowedError, "URI scheme 'http' is not allowed"),
    ],
)
def test_probe_refuses_bad_media_with_a_specific_reason(media_dir, overrides, error, message):
    with pytest.raises(error, match=message):
        probe(media_dir, **overrides)


def test_probe_reads_media_next_to_a_manifest_on_memory_storage(media_dir):
    import fsspec

    for name in ("portrait.jpg", "speech.wav"):
        with fsspec.open(f"memory://probe-test/cat/media/{name}", "wb") as handle:
            handle.write((media_dir / name).read_bytes())
    row = ManifestRow(**good("remote"))
    result = probe_media(row, "memory://probe-test/cat/manifest.parquet")
    assert result.portrait_uri == "memory://probe-test/cat/media/portrait.jpg"
    assert result.audio_sha256 == probe(media_dir).audio_sha256
    outside = ManifestRow(**good("escape", audio_uri="../../other/speech.wav"))
    with pytest.raises(UriNotAllowedError, match="outside the allowed roots"):
        probe_media(outside, "memory://probe-test/cat/manifest.parquet")


def test_a_much_smaller_second_face_is_ignored_and_the_largest_is_the_subject(media_dir):
    result = probe(media_dir, portrait_uri="big_and_small_face.jpg")
    x, y, w, h = result.face_box
    assert x > 512 and w > 150  # hopper's face, in the right half


@pytest.mark.parametrize("offset, shown", [(0.5, "0.50"), (0.11, "0.11"), (-10.0, "10.00")])
def test_declared_duration_off_by_more_than_a_tenth_is_refused(media_dir, offset, shown):
    actual = probe(media_dir).audio_duration_s
    with pytest.raises(DurationMismatchError, match=rf"differs from the audio's .* by {shown} s \(allowed 0.1 s\)"):
        probe(media_dir, duration_s=actual + offset)


def test_limits_are_enforced(media_dir):
    with pytest.raises(AudioError, match="longer than the limit of 1 s"):
        probe(media_dir, MediaLimits(max_audio_seconds=1.0))
    with pytest.raises(ImageError, match="over the limit of 0.1 MP"):
        probe(media_dir, MediaLimits(max_pixels=100_000))
    with pytest.raises(MediaErrors, match="over the file-size limit") as caught:  # both files are over it
        probe(media_dir, MediaLimits(max_file_bytes=1000))
    assert [type(error) for error in caught.value.errors] == [MediaTooLargeError, MediaTooLargeError]


def test_both_bad_files_are_reported_together(media_dir):
    with pytest.raises(InputError) as caught:
        probe(media_dir, portrait_uri="text.jpg", audio_uri="text.wav")
    assert "portrait is not a readable image" in str(caught.value) and "audio cannot be decoded" in str(caught.value)
    assert [type(error) for error in caught.value.errors] == [ImageError, AudioError]
    row = ManifestRow(**good("both-bad", portrait_uri="text.jpg", audio_uri="text.wav"))
    quarantine = probe_or_quarantine(row, str(media_dir / "manifest.parquet"))
    assert len(quarantine.reasons) == 2 and quarantine.reason == "; ".join(quarantine.reasons)
    assert quarantine.reasons[0].startswith("portrait is not a readable image")
    assert "audio cannot be decoded" in quarantine.reasons[1]


def test_probe_task_turns_bad_input_into_quarantine(media_dir):
    row = ManifestRow(**good("bad-audio", portrait_uri="portrait.jpg", audio_uri="text.wav"))
    outcome = probe_row_task.fn(row, str(media_dir / "manifest.parquet"))
    assert outcome == Quarantine("bad-audio", "probe", outcome.reasons) and "audio cannot be decoded" in outcome.reason
    assert probe_row_task.task_run_name == "probe-{row.row_id}"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(portrait=st.binary(max_size=2048), audio=st.binary(max_size=2048))
def test_random_bytes_as_media_always_end_in_quarantine(tmp_path, portrait, audio):
    (tmp_path / "p.jpg").write_bytes(portrait)
    (tmp_path / "a.wav").write_bytes(audio)
    row = ManifestRow(**good("random", portrait_uri="p.jpg", audio_uri="a.wav"))
    outcome = probe_or_quarantine(row, str(tmp_path / "manifest.parquet"))
    assert isinstance(outcome, Quarantine) and outcome.reason


# --- the command ------------------------------------------------------------------------------


def test_cli_validate_example_manifest_is_all_good(capsys):
    assert main(["validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 rows ok, 0 quarantined" in out


def test_cli_validate_reports_quarantined_rows_with_exit_2(media_dir, capsys):
    path = media_dir / "manifest.parquet"
    pd.DataFrame(
        [
            good(r, portrait_uri=p, audio_uri="speech.wav", consent_ref=c)
            for r, p, c in [
                ("fine", "portrait.jpg", "rel/1"),
                ("no-consent", "portrait.jpg", None),
                ("no-face", "coffee.jpg", "rel/2"),
            ]
        ]
    ).to_parquet(path)
    assert main(["validate", str(path), "--json"]) == 2
    import json

    report = json.loads(capsys.readouterr().out)
    verdicts = {v["row_id"]: v for v in report["verdicts"]}
    assert [v["row_id"] for v in report["verdicts"]] == ["fine", "no-consent", "no-face"]
    assert verdicts["fine"]["status"] == "ok"
    assert (
        verdicts["no-consent"]["stage"] == "validate" and "consent_ref is missing" in verdicts["no-consent"]["reason"]
    )
    assert verdicts["no-face"]["stage"] == "probe" and "no face found" in verdicts["no-face"]["reason"]


def test_cli_validate_unusable_manifest_exits_1_with_one_line(tmp_path, capsys):
    path = tmp_path / "m.parquet"
    path.write_bytes(b"PAR1 not really")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: manifest is not a readable Parquet file") and err.count("\n") == 1


def test_a_catalog_remembers_the_suite_s_verdicts_on_an_unchanged_table(tmp_path, monkeypatch):
    """A nightly re-checks the same manifest: the suite's verdicts come from the catalog's
    memory then (no Great Expectations run), and any change to a value, or to a value's type
    alone, runs the suite again; a memory that does not fit counts as none."""
    import tasks.table

    catalog = str(tmp_path / "catalog")
    runs = []
    real_suite = tasks.table._run_gx_suite

    def counted_suite(*args):
        runs.append(1)
        return real_suite(*args)

    monkeypatch.setattr(tasks.table, "_run_gx_suite", counted_suite)
    table = pd.DataFrame([good("ok-1"), good("no-consent", consent_ref=None), good("bad-lang", language="english")])

    def check(frame):
        rows, quarantined = validate_table(frame.copy(), catalog_url=catalog)
        return [r.row_id for r in rows], {q.row_id: q.reasons for q in quarantined}

    first = check(table)
    assert len(runs) == 1 and first[0] == ["ok-1"]
    assert "consent_ref is missing" in first[1]["no-consent"][0]
    assert "is not a BCP-47 tag" in " ".join(first[1]["bad-lang"])
    assert check(table) == first and len(runs) == 1  # remembered: the suite did not run

    changed = table.copy()
    changed.loc[0, "language"] = "xx-invalid-tag!"
    rows, reasons = check(changed)
    assert len(runs) == 2 and rows == [] and "is not a BCP-47 tag" in reasons["ok-1"][0]

    retyped = table.copy().astype({"consent_ref": object})
    retyped.loc[0, "consent_ref"] = 7  # 7 and "7" must not share a memory: the type check differs
    rows, reasons = check(retyped)
    assert len(runs) == 3 and "consent_ref must be text" in reasons["ok-1"][0]

    assert check(table) == first and len(runs) == 4  # the memory holds the last table only
    memory = tmp_path / "catalog" / "_state" / "table-check.parquet"
    remembered = pq.read_table(memory)
    assert len(remembered.schema.metadata[b"key"]) == 64 and remembered.num_rows == 2  # no-consent, bad-lang
    tampered = pa.table(
        {
            "reason_id": ["null:row_id", *remembered.column("reason_id").to_pylist()],
            "positions": [[99], *remembered.column("positions").to_pylist()],
        },
        metadata=remembered.schema.metadata,  # the same key
    )
    pq.write_table(tampered, memory)
    assert check(table) == first and len(runs) == 5  # a position outside the table: not trusted
    memory.write_bytes(b"not parquet")
    assert check(table) == first and len(runs) == 6
