"""One manifest holding every bad, hostile and odd input next to good rows, rendered once.

`sonic-catalog render` runs as a subprocess (the preview generator, 256 px) on a manifest whose
rows each carry exactly one problem (or one odd-but-valid input); the module fixture renders it
once and every test reads that run. What a user expects, per case, is in `CASES`:

- bad rows end `quarantined` with a reason naming their specific problem (`expect` is a
  fragment that only that cause's message holds), and no two causes share a message;
- odd-but-valid inputs (16-bit PNG, CMYK, grayscale, alpha, EXIF-rotated, 8 kHz, 48 kHz stereo,
  24-bit, a small second face, a face touching the border, a cartoon face the detector finds, a
  hostile `collection`) are converted and published;
- the run exits 2, with no traceback, nothing written outside the catalog, and no credential
  (from the environment or a manifest URI) in any output.

Large inputs are generated here, not committed: a decompression bomb (a PNG header claiming
65535x65535 pixels), a real 12000x12000 PNG (144 MP, refused by the 40 MP pixel limit before
decoding), and 31 s of audio run with `--max-audio-seconds 30`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from cli_runs import CLI

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
FAKE_ENV_SECRET = "FAKEsecretFromEnv0123456789abcdef"
FAKE_URI_SECRET = "FAKEpasswordInUri9876"
SPEECH_S = soundfile.info(HOSTILE / "speech_ok.wav").duration
OK_IMG, OK_WAV = "portrait_ok.jpg", "speech_ok.wav"

# (row_id, case, changes to a good row, expected fragment of the reason; None = must publish)
CASES: list[tuple[str, str, dict, str | None]] = [
    # good rows
    ("good-plain", "a plain good row", {}, None),
    ("good-declared", "declared duration within 0.1 s", {"duration_s": round(SPEECH_S + 0.05, 3)}, None),
    (
        "good-hostile-collection",
        "collection '../../escape' stays inside the catalog",
        {"collection": "../../escape"},
        None,
    ),
    # odd but valid media: converted and rendered
    (
        "ok-16bit-png",
        "16-bit PNG portrait + 8 kHz audio",
        {"portrait_uri": "media/image_16bit.png", "audio_uri": "media/audio_8k.wav"},
        None,
    ),
    (
        "ok-cmyk",
        "CMYK JPEG + 48 kHz stereo",
        {"portrait_uri": "media/image_cmyk.jpg", "audio_uri": "media/audio_48k_stereo.wav"},
        None,
    ),
    (
        "ok-gray",
        "grayscale JPEG + 24-bit WAV",
        {"portrait_uri": "media/image_gray.jpg", "audio_uri": "media/audio_24bit.wav"},
        None,
    ),
    ("ok-alpha", "PNG with alpha", {"portrait_uri": "media/image_alpha.png"}, None),
    ("ok-exif", "EXIF-rotated JPEG", {"portrait_uri": "media/image_exif_rotated.jpg"}, None),
    (
        "ok-two-faces",
        "a large face and a small one (largest animated)",
        {"portrait_uri": "media/image_two_faces_big_small.jpg"},
        None,
    ),
    ("ok-border-face", "face touching the border", {"portrait_uri": "media/image_face_at_border.jpg"}, None),
    ("ok-cartoon", "a drawn (cartoon) face the detector finds", {"portrait_uri": "media/image_cartoon.png"}, None),
    # row ids
    ("dup-id", "duplicate row_id", {}, "duplicate row_id 'dup-id' (appears 2 times)"),
    ("a/b", "row_id with '/'", {}, "row_id 'a/b' has '/'"),
    ("a..b", "row_id with '..'", {}, "row_id 'a..b' contains '..'"),
    ("with space", "row_id with a space", {}, "row_id 'with space' has ' '"),
    ("unicodé", "row_id with unicode", {}, "has 'é'"),
    ("x" * 300, "row_id of 300 characters", {}, "row_id is 300 characters long"),
    # null / empty fields
    ("null-portrait", "null portrait_uri", {"portrait_uri": None}, "portrait_uri is missing"),
    ("empty-audio", "empty audio_uri", {"audio_uri": ""}, "audio_uri is empty"),
    ("null-language", "null language", {"language": None}, "language is missing"),
    ("bad-language", "language not BCP-47", {"language": "english"}, "language 'english' is not a BCP-47 tag"),
    # URIs
    (
        "uri-dotdot",
        "../../ escape",
        {"portrait_uri": "media/../../outside/portrait.jpg"},
        "outside/portrait.jpg is outside the allowed roots",
    ),
    (
        "uri-absolute",
        "absolute path outside the roots",
        {"portrait_uri": "{outside}/portrait.jpg"},
        "is outside the allowed roots",
    ),
    ("uri-http", "http:// URL", {"portrait_uri": "http://example.com/face.jpg"}, "scheme 'http' is not allowed"),
    ("uri-ftp", "ftp:// URL", {"audio_uri": "ftp://example.com/script.wav"}, "scheme 'ftp' is not allowed"),
    (
        "uri-passwd",
        "file:///etc/passwd",
        {"portrait_uri": "file:///etc/passwd"},
        "path /etc/passwd is outside the allowed roots",
    ),
    ("uri-missing", "missing object", {"portrait_uri": "media/nobody.jpg"}, "not found"),
    ("uri-symlink", "symlink pointing outside", {"portrait_uri": "media/link_outside.jpg"}, "is a symlink"),
    (
        "uri-credentials",
        "credentials in an s3 URI",
        {"portrait_uri": f"s3://AKIAFAKE:{FAKE_URI_SECRET}@bucket/face.jpg"},
        "URI carries credentials",
    ),
    # images
    ("img-empty", "zero-byte image", {"portrait_uri": "media/image_empty.jpg"}, "portrait is an empty file (0 bytes)"),
    (
        "img-truncated",
        "truncated JPEG",
        {"portrait_uri": "media/image_truncated.jpg"},
        "portrait is truncated or corrupt",
    ),
    ("img-text", "text named .jpg", {"portrait_uri": "media/image_text.jpg"}, "portrait is not a readable image"),
    ("img-bomb", "decompression bomb", {"portrait_uri": "media/bomb.png"}, "portrait is 65535x65535"),
    (
        "img-12000",
        "12000x12000 over the pixel limit",
        {"portrait_uri": "media/huge_12000.png"},
        "portrait is 12000x12000 = 144.0 MP, over the limit of 40.0 MP",
    ),
    ("img-32", "32x32 image", {"portrait_uri": "media/image_32x32.png"}, "portrait is 32x32, too small"),
    ("img-no-face", "landscape, no face", {"portrait_uri": "media/image_landscape.jpg"}, "no face found"),
    (
        "img-two-same",
        "two faces of the same size",
        {"portrait_uri": "media/image_two_faces_same_size.jpg"},
        "presenter is ambiguous",
    ),
    ("img-too-big-file", "file over --max-file-mb", {"portrait_uri": "media/big_file.jpg"}, "over the file-size limit"),
    # audio
    ("aud-empty", "zero-byte audio", {"audio_uri": "media/audio_empty.wav"}, "audio is an empty file (0 bytes)"),
    ("aud-text", "text named .wav", {"audio_uri": "media/audio_text.wav"}, "audio cannot be decoded"),
    ("aud-truncated", "truncated mp3", {"audio_uri": "media/audio_truncated.mp3"}, "audio file is truncated"),
    ("aud-10ms", "10 ms audio", {"audio_uri": "media/audio_10ms.wav"}, "audio is 10 ms long, shorter than the minimum"),
    ("aud-silence", "silence only", {"audio_uri": "media/audio_silence.wav"}, "no speech found"),
    ("aud-too-long", "over the length limit", {"audio_uri": "media/long.wav"}, "longer than the limit of 30 s"),
    ("aud-video", "a video file given as audio", {"audio_uri": "media/audio_is_video.mp4"}, "file has no audio stream"),
    # declared duration
    ("dur-011", "duration_s off by 0.11 s", {"duration_s": round(SPEECH_S + 0.11, 4)}, "by 0.11 s (allowed 0.1 s)"),
    ("dur-10", "duration_s off by 10 s", {"duration_s": round(SPEECH_S + 10, 4)}, "by 10.00 s (allowed 0.1 s)"),
    ("dur-nan", "duration_s NaN", {"duration_s": math.nan}, "duration_s is NaN"),
    ("dur-negative", "duration_s negative", {"duration_s": -3.0}, "duration_s -3 must be a positive number"),
    # parameters
    ("par-resolution", "min_resolution out of range", {"min_resolution": 5000}, "min_resolution 5000 is out of range"),
    ("par-expand", "expand_ratio out of range", {"expand_ratio": 9.0}, "expand_ratio 9 is out of range"),
    ("par-steps", "inference_steps out of range", {"inference_steps": 0}, "inference_steps 0 is out of range"),
    ("par-dynamic", "dynamic_scale out of range", {"dynamic_scale": 5.0}, "dynamic_scale 5 is out of range"),
    ("par-motion", "motion_scale out of range", {"motion_scale": 0.1}, "motion_scale 0.1 is out of range"),
    ("par-seed", "seed out of range", {"seed": -1}, "seed -1 is out of range"),
    # consent
    ("consent-missing", "consent missing", {"consent_ref": None}, "consent_ref is missing"),
    ("consent-empty", "consent empty", {"consent_ref": ""}, "consent_ref is empty: give"),
    ("consent-blank", "consent whitespace", {"consent_ref": "   \t"}, "consent_ref is only whitespace"),
]
GOOD = [row_id for row_id, _, _, expect in CASES if expect is None]
BAD = [(row_id, case, expect) for row_id, case, _, expect in CASES if expect is not None]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a tiny (truncated) image stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + chunk(b"IEND", b"")
    )


def png_1bit(width: int, height: int) -> bytes:
    """A real, complete 1-bit black PNG (small on disk, huge in pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def build_tree(root: Path) -> dict:
    """root/project/{manifest.parquet, media/}, root/outside/ (must never be read), root/catalog."""
    project, outside = root / "project", root / "outside"
    media = project / "media"
    shutil.copytree(HOSTILE, media, ignore=shutil.ignore_patterns("*.py"))
    outside.mkdir()
    shutil.copy(HOSTILE / OK_IMG, outside / "portrait.jpg")  # a perfectly good portrait, in the wrong place
    os.symlink(outside / "portrait.jpg", media / "link_outside.jpg")
    (media / "bomb.png").write_bytes(png_header_only(65535, 65535))
    (media / "huge_12000.png").write_bytes(png_1bit(12000, 12000))
    rng = np.random.default_rng(0)
    (media / "big_file.jpg").write_bytes((HOSTILE / OK_IMG).read_bytes() + rng.bytes(3 * 1024 * 1024))
    speech, rate = soundfile.read(HOSTILE / OK_WAV, dtype="float32")
    soundfile.write(
        media / "long.wav", np.tile(speech, int(31 / SPEECH_S) + 1)[: int(31 * rate)], rate, subtype="PCM_16"
    )

    records = []
    for row_id, _, changes, _ in CASES:
        record = {
            "row_id": row_id,
            "portrait_uri": f"media/{OK_IMG}",
            "audio_uri": f"media/{OK_WAV}",
            "language": "en",
            "consent_ref": "release/2026/test-001",
            "collection": "hostile",
            "title": row_id,
        }
        record.update({k: (v.format(outside=outside) if isinstance(v, str) else v) for k, v in changes.items()})
        records.append(record)
    records.append(dict(records[[c[0] for c in CASES].index("dup-id")], title="the duplicate"))
    columns = {}
    schema = {
        "duration_s": pa.float64(),
        "min_resolution": pa.int64(),
        "expand_ratio": pa.float64(),
        "inference_steps": pa.int64(),
        "dynamic_scale": pa.float64(),
        "motion_scale": pa.float64(),
        "seed": pa.int64(),
    }
    names = list(dict.fromkeys(name for record in records for name in record))
    for name in names:
        values = [record.get(name) for record in records]
        # from_pandas=False keeps NaN as NaN (a NaN cell is an error; a null one means "default").
        columns[name] = pa.array(values, type=schema.get(name, pa.string()), from_pandas=False)
    manifest = project / "manifest.parquet"
    pq.write_table(pa.table(columns), manifest)
    return {"root": root, "project": project, "outside": outside, "manifest": manifest, "catalog": root / "catalog"}


def cli_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(tmp.parent / f"{tmp.name}-prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "AWS_SECRET_ACCESS_KEY": FAKE_ENV_SECRET,
            "AWS_ACCESS_KEY_ID": "AKIAFAKEENV",
            "PYTHONWARNINGS": "ignore",
        }
    )
    env.pop("PREFECT_API_URL", None)
    return env


def snapshot(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    tree = build_tree(root)
    before = snapshot(root, tree["catalog"])
    command = CLI + [
        "render",
        str(tree["manifest"]),
        "--catalog",
        str(tree["catalog"]),
        "--min-resolution",
        "256",
        "--concurrency",
        "2",
        "--max-audio-seconds",
        "30",
        "--max-file-mb",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=cli_env(root), cwd=root, timeout=600)
    run_id = next(line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("run "))
    ledger = pd.read_parquet(tree["catalog"] / "_runs" / run_id / "ledger.parquet")
    return {**tree, "done": done, "run_id": run_id, "ledger": ledger, "before": before}


@pytest.mark.slow  # kill-and-corrupt suite: one hostile catalog via the CLI, ~60 s
def test_exit_code_2_and_no_traceback(hostile_run):
    done = hostile_run["done"]
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


@pytest.mark.slow  # kill-and-corrupt suite: one hostile catalog via the CLI, ~60 s
def test_every_bad_row_has_its_specific_reason(hostile_run):
    ledger = hostile_run["ledger"]
    assert len(ledger) == len(CASES) + 1  # one ledger row per manifest row (the duplicate twice)
    reasons = {}
    for row_id, case, expect in BAD:
        rows = ledger[ledger.row_id == row_id]
        assert len(rows) >= 1, f"{case}: no ledger row"
        assert set(rows.status) == {"quarantined"}, f"{case}: {rows[['status', 'reason']].to_dict('records')}"
        reason = rows.reason.iloc[0]
        assert expect in reason, f"{case}: expected {expect!r} in {reason!r}"
        assert "invalid input" not in reason.lower()
        reasons[case] = reason
    # No two different causes share a message.
    assert len(set(reasons.values())) == len(reasons), pd.Series(reasons)[pd.Series(reasons).duplicated(keep=False)]
    print(
        f"\n{len(BAD)} distinct bad inputs in one manifest, each with its own reason "
        f"(+{len(GOOD)} good or odd-but-valid rows, + 4 run-level manifest faults)"
    )
    assert len(BAD) >= 45


@pytest.mark.slow  # kill-and-corrupt suite: one hostile catalog via the CLI, ~60 s
def test_every_good_row_is_published_and_indexed(hostile_run):
    ledger, catalog = hostile_run["ledger"], hostile_run["catalog"]
    good = ledger[ledger.row_id.isin(GOOD)]
    assert dict(zip(good.row_id, good.status, strict=False)) == {row_id: "published" for row_id in GOOD}, good[
        ["row_id", "status", "reason"]
    ]
    index = pd.read_parquet(catalog / "index.parquet")
    assert set(index.row_id) == set(GOOD)
    for video in index.video:
        assert (catalog / video).stat().st_size > 1000
    sidecar = json.loads((catalog / index[index.row_id == "ok-exif"].sidecar.iloc[0]).read_text())
    assert sidecar["video_facts"]["height"] >= 256


@pytest.mark.slow  # kill-and-corrupt suite: one hostile catalog via the CLI, ~60 s
def test_hostile_keys_stay_inside_the_catalog(hostile_run):
    catalog, root = hostile_run["catalog"], hostile_run["root"]
    # Nothing was created outside the catalog (the manifest's tree and the outside folder unchanged).
    assert snapshot(root, catalog) == hostile_run["before"]
    for path in catalog.rglob("*"):
        assert catalog in path.resolve().parents or path.resolve() == catalog
        assert ".partial" not in path.name
    escaped = pd.read_parquet(catalog / "index.parquet").set_index("row_id").loc["good-hostile-collection", "video"]
    assert ".." not in escaped and escaped.startswith("escape-")


@pytest.mark.slow  # kill-and-corrupt suite: one hostile catalog via the CLI, ~60 s
def test_no_credential_in_any_output(hostile_run):
    done, catalog = hostile_run["done"], hostile_run["catalog"]
    texts = [done.stdout, done.stderr]
    for path in catalog.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    for secret in (FAKE_ENV_SECRET, FAKE_URI_SECRET):
        assert not any(secret in text for text in texts), secret


# --- run-level manifest faults: one `error:` line, exit 1 ------------------------------------------


def _run_level(tmp_path: Path, manifest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        CLI + ["render", str(manifest), "--catalog", str(tmp_path / "catalog")],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=120,
    )


RUN_LEVEL = {
    "not-parquet": ("manifest is not a readable Parquet file", lambda p: p.write_text("row_id,portrait_uri\nx,y\n")),
    "missing-column": (
        "lacks required column(s) consent_ref",
        lambda p: pq.write_table(
            pa.table({"row_id": ["a"], "portrait_uri": ["p.jpg"], "audio_uri": ["a.wav"], "language": ["en"]}), p
        ),
    ),
    "wrong-types": (
        "column 'consent_ref' has type int64, expected text",
        lambda p: pq.write_table(
            pa.table(
                {
                    "row_id": ["a"],
                    "portrait_uri": ["p.jpg"],
                    "audio_uri": ["a.wav"],
                    "language": ["en"],
                    "consent_ref": [7],
                }
            ),
            p,
        ),
    ),
    "empty": (
        "manifest has no rows",
        lambda p: pq.write_table(
            pa.table(
                {
                    n: pa.array([], pa.string())
                    for n in ("row_id", "portrait_uri", "audio_uri", "language", "consent_ref")
                }
            ),
            p,
        ),
    ),
}


@pytest.mark.parametrize("fault", sorted(RUN_LEVEL))
def test_run_level_manifest_fault_is_one_error_line(tmp_path, fault):
    expect, write = RUN_LEVEL[fault]
    manifest = tmp_path / "manifest.parquet"
    write(manifest)
    done = _run_level(tmp_path, manifest)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], done.stderr
    assert "Traceback" not in done.stderr
