"""Property-based: random manifests and random bytes as media never crash anything.

Two levels:
- many examples through the pure per-row path (Parquet written and read back with
  `read_manifest`, `validate_table`, `probe_or_quarantine`): the whole manifest is refused with
  a `ManifestError`, or every row gets exactly one verdict, never an unhandled exception;
- a few examples through the real `sonic-catalog render` (in process, the Prefect flow): exit 0,
  2 or 1 (with one `error:` line), and a ledger row for every manifest row.

Media are random bytes, real fixtures, or real fixtures cut at a random offset or with random
bytes flipped (the nastiest inputs for decoders are almost-valid files).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from manifests.schema import read_manifest
from sonic_model.errors import ManifestError
from tasks.probe import probe_or_quarantine
from tasks.records import ProbedRow, Quarantine
from tasks.table import validate_table

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
REAL_MEDIA = [
    "portrait_ok.jpg",
    "image_16bit.png",
    "image_alpha.png",
    "speech_ok.wav",
    "audio_8k.wav",
    "audio_is_video.mp4",
]
REAL_BYTES = {name: (HOSTILE / name).read_bytes() for name in REAL_MEDIA}


@st.composite
def media_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "real", "cut", "flipped"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    data = REAL_BYTES[draw(st.sampled_from(REAL_MEDIA))]
    if kind == "real":
        return data
    if kind == "cut":
        return data[: draw(st.integers(0, len(data)))]
    flipped = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(flipped) - 1))
        flipped[position] = draw(st.integers(0, 255))
    return bytes(flipped)


TEXT = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["", " ", "..", "a/b", "en", "zh-Hans", "x" * 200]))
URI = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "media/m0",
            "media/m1",
            "media/m2",
            "../m0",
            "/etc/passwd",
            "http://x/y",
            "file:///etc/hosts",
            "s3://u:p@b/k",
            "media/missing",
            "media/",
            "memory://x",
            "a::b",
        ]
    ),
)
FLOAT = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-5, 10))
INT = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.integers(-2, 2000))
COLUMN_TYPES = {"text": (TEXT, pa.string()), "float": (FLOAT, pa.float64()), "int": (INT, pa.int64())}
SCHEMA_KIND = {
    "row_id": "text",
    "portrait_uri": "uri",
    "audio_uri": "uri",
    "language": "text",
    "consent_ref": "text",
    "duration_s": "float",
    "collection": "text",
    "min_resolution": "int",
    "expand_ratio": "float",
    "inference_steps": "int",
    "dynamic_scale": "float",
    "motion_scale": "float",
    "seed": "int",
}
PLAUSIBLE = {
    "row_id": st.from_regex(r"r[0-9]{1,4}", fullmatch=True),
    "language": st.just("en"),
    "consent_ref": st.just("release/1"),
    "portrait_uri": st.sampled_from(["media/m0", "media/m1", "media/m2"]),
    "audio_uri": st.sampled_from(["media/m0", "media/m1", "media/m2"]),
    # A plausible number cell is an empty one (the run's default): the wild values come from FLOAT / INT.
    **{name: st.none() for name, kind in SCHEMA_KIND.items() if kind in ("float", "int")},
}


@st.composite
def manifests(draw) -> tuple[pa.Table, list[bytes]]:
    count = draw(st.integers(1, 4))
    columns = {}
    for name, kind in SCHEMA_KIND.items():
        if name not in ("row_id", "portrait_uri", "audio_uri", "language", "consent_ref") and not draw(st.booleans()):
            continue  # optional columns come and go
        # Mostly the schema's own type; sometimes a wrong one (a run-level error or a row one).
        if draw(st.integers(0, 39)) == 0:
            kind = draw(st.sampled_from(sorted(COLUMN_TYPES)))
        strategy, arrow_type = (URI, pa.string()) if kind == "uri" else COLUMN_TYPES[kind]
        plausible = PLAUSIBLE.get(name) if kind == SCHEMA_KIND[name] else None
        # Four values in five plausible, so most manifests have rows that reach the media probes.
        values = [
            draw(plausible) if plausible is not None and draw(st.integers(0, 4)) else draw(strategy)
            for _ in range(count)
        ]
        columns[name] = pa.array(values, type=arrow_type, from_pandas=False)
    if draw(st.integers(0, 19)) == 0:
        columns.pop(draw(st.sampled_from(sorted(columns))))  # a required column missing, sometimes
    media = draw(st.lists(media_bytes(), min_size=3, max_size=3))
    return pa.table(columns), media


def write_case(folder: Path, table: pa.Table, media: list[bytes]) -> Path:
    (folder / "media").mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(media):
        (folder / "media" / f"m{index}").write_bytes(data)
    manifest = folder / "manifest.parquet"
    pq.write_table(table, manifest)
    return manifest


@pytest.mark.slow  # kill-and-corrupt suite: 80 random manifests probed, ~60 s
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=manifests())
def test_random_manifests_and_media_always_end_in_verdicts(tmp_path_factory, case):
    table, media = case
    manifest = write_case(tmp_path_factory.mktemp("fuzz"), table, media)
    try:
        frame = read_manifest(manifest)
        rows, quarantined = validate_table(frame)
    except ManifestError as exc:
        assert str(exc)  # a run-level refusal, with a message
        return
    verdicts = list(quarantined)
    event(f"rows probed: {min(len(rows), 2)}+" if rows else "rows probed: 0")
    for row in rows:
        outcome = probe_or_quarantine(row, str(manifest))
        assert isinstance(outcome, (ProbedRow, Quarantine))
        if isinstance(outcome, Quarantine):
            assert outcome.reason.strip()
            assert "media could not be probed" not in outcome.reason, outcome.reason  # no unexpected decoder exception
        verdicts.append(outcome)
    assert len(verdicts) == len(frame)  # every row exactly one verdict
    for verdict in verdicts:
        if isinstance(verdict, Quarantine):
            assert verdict.reason.strip() and "Traceback" not in verdict.reason


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=manifests())
def test_random_manifests_through_the_real_flow(tmp_path_factory, case):
    from sonic_catalog.cli import main

    table, media = case
    folder = tmp_path_factory.mktemp("fuzz-flow")
    manifest = write_case(folder, table, media)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["render", str(manifest), "--catalog", str(folder / "catalog"), "--min-resolution", "256"])
    assert "Traceback" not in err.getvalue()
    if code == 1:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), err.getvalue()
        return
    assert code in (0, 2), out.getvalue() + err.getvalue()
    run_id = next(line.split()[1].rstrip(":") for line in out.getvalue().splitlines() if line.startswith("run "))
    ledger = pd.read_parquet(folder / "catalog" / "_runs" / run_id / "ledger.parquet")
    assert len(ledger) == table.num_rows
    assert ledger.status.notna().all()
    bad = ledger[~ledger.status.isin(["published", "skipped_cached"])]
    assert bad.reason.str.strip().str.len().gt(0).all()
