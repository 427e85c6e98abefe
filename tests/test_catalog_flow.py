"""The catalog flow end to end: real Prefect (ephemeral API), real Parquet, ffmpeg and GX.

One manifest holds good rows and the classic bad ones; it is rendered once (module fixture)
and every assertion reads that catalog. Renders use a 256 px short side so they take seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pandas as pd
import pytest
import soundfile

from sonic_catalog.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
RESOLUTION = 256  # the QA default minimum short side; small enough to render in seconds


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def ledger_of(catalog: str, run_id: str) -> pd.DataFrame:
    fs, root = fsspec.core.url_to_fs(catalog)
    with fs.open(f"{root.rstrip('/')}/_runs/{run_id}/ledger.parquet", "rb") as handle:
        return pd.read_parquet(handle)


def run_id_of(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("run "))
    return line.split()[1].rstrip(":")


def write_media(folder: Path) -> dict:
    """Good and bad media beside the manifest (relative URIs resolve against it)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", folder / "astronaut.jpg")
    shutil.copy(FIXTURES / "portrait_hopper.jpg", folder / "hopper.jpg")
    shutil.copy(FIXTURES / "speech_en_16k.wav", folder / "en.wav")
    shutil.copy(FIXTURES / "speech_de_48k_stereo.wav", folder / "de.wav")
    # A landscape: smooth colour gradients and no face anywhere.
    y, x = np.mgrid[0:240, 0:320]
    landscape = np.stack([x * 255 // 320, y * 255 // 240, np.full_like(x, 90)], axis=-1).astype("uint8")
    Image.fromarray(landscape).save(folder / "landscape.jpg")
    # A JPEG cut off after its first kilobyte.
    (folder / "broken.jpg").write_bytes((FIXTURES / "portrait_hopper.jpg").read_bytes()[:1024])
    (folder / "notes.wav").write_text("these are speaker notes, not audio\n" * 20)
    return {"en_s": soundfile.info(folder / "en.wav").duration, "de_s": soundfile.info(folder / "de.wav").duration}


def manifest_rows(durations: dict) -> list[dict]:
    def row(row_id, portrait, audio, language="en", consent="release/test-001", **extra):
        return {
            "row_id": row_id,
            "portrait_uri": f"media/{portrait}",
            "audio_uri": f"media/{audio}",
            "language": language,
            "consent_ref": consent,
            "collection": "course",
            "title": f"row {row_id}",
            "min_resolution": RESOLUTION,
            **extra,
        }

    return [
        row("good-en", "astronaut.jpg", "en.wav", duration_s=round(durations["en_s"], 2)),
        row("good-de", "hopper.jpg", "de.wav", language="de"),
        row("no-consent", "hopper.jpg", "de.wav", language="de", consent=None),
        row("no-face", "landscape.jpg", "de.wav", language="de"),
        row("corrupt-image", "broken.jpg", "de.wav", language="de"),
        row("not-audio", "astronaut.jpg", "notes.wav"),
        row("duration-off", "astronaut.jpg", "en.wav", duration_s=round(durations["en_s"] + 0.5, 2)),
        row("twice", "hopper.jpg", "de.wav", language="de"),
        row("twice", "astronaut.jpg", "de.wav", language="de"),
    ]


GOOD = {"good-en", "good-de"}
BAD = {"no-consent", "no-face", "corrupt-image", "not-audio", "duration-off", "twice"}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The mixed manifest rendered once into a local catalog."""
    root = tmp_path_factory.mktemp("catalog-flow")
    durations = write_media(root / "media")
    manifest = root / "manifest.parquet"
    pd.DataFrame(manifest_rows(durations)).to_parquet(manifest)
    catalog = root / "catalog"
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog), "--concurrency", "2")
    bundle = catalog / "_credentials" / "development-signer.pem"
    return {
        "root": root,
        "manifest": manifest,
        "catalog": catalog,
        "code": code,
        "out": out,
        "err": err,
        "run_id": run_id_of(out),
        "dev_bundle": bundle.read_bytes() if bundle.exists() else None,
    }


def test_mixed_manifest_exits_2_without_traceback(first_run):
    assert first_run["code"] == 2, first_run["out"] + first_run["err"]
    assert "Traceback" not in first_run["err"]
    assert "report:" in first_run["out"] and "catalog:" in first_run["out"]


def test_good_rows_are_published_with_sidecar_poster_and_index_entry(first_run):
    catalog = first_run["catalog"]
    ledger = ledger_of(str(catalog), first_run["run_id"])
    published = ledger[ledger.status == "published"]
    assert set(published.row_id) == GOOD
    for row_id, language in (("good-en", "en"), ("good-de", "de")):
        stem = catalog / "course" / language / row_id
        assert stem.with_suffix(".mp4").stat().st_size > 1000
        assert stem.with_suffix(".jpg").read_bytes()[:2] == b"\xff\xd8"
        sidecar = json.loads(stem.with_suffix(".json").read_text())
        assert sidecar["ai_generated"] is True and "AI-generated" in sidecar["disclosure"]
        assert sidecar["consent_ref"] == "release/test-001"
        assert len(sidecar["inputs"]["portrait_sha256"]) == 64 and len(sidecar["inputs"]["audio_sha256"]) == 64
        assert (
            sidecar["generator"]["name"] == "preview" and sidecar["generator"]["params"]["min_resolution"] == RESOLUTION
        )
        assert sidecar["qa"]["passed"] is True and sidecar["qa"]["figures"]
        assert len(sidecar["content_key"]) == 64 and "render_s" in sidecar["timings"]
        assert_signed(stem.with_suffix(".mp4").read_bytes(), sidecar)
    index = pd.read_parquet(catalog / "index.parquet")
    assert set(index.row_id) == GOOD
    assert all((catalog / video).exists() for video in index.video)
    assert {v["row_id"] for v in json.loads((catalog / "index.json").read_text())["videos"]} == GOOD
    # Nothing half-written was left behind under the catalog.
    assert not [p for p in catalog.rglob("*") if ".partial" in p.name]


def assert_signed(video: bytes, sidecar: dict) -> None:
    """The published file carries valid Content Credentials that say what the sidecar says."""
    from sonic_model.credentials import read_credentials

    report = read_credentials(io.BytesIO(video))
    assert report.status == "valid" and report.ai_generated, report.problems
    assert report.manifest_label == sidecar["credentials"]["manifest_label"]
    assert report.signer["common_name"] in sidecar["credentials"]["signer"] and sidecar["credentials"]["development"]
    assert (report.sonic["row_id"], report.sonic["content_key"]) == (sidecar["row_id"], sidecar["content_key"])
    assert report.sonic["consent_ref"] == sidecar["consent_ref"] and report.sonic["language"] == sidecar["language"]
    inputs = sidecar["inputs"]
    assert {item["sha256"] for item in report.ingredients} == {inputs["portrait_sha256"], inputs["audio_sha256"]}


def test_the_catalog_signs_with_its_development_certificate_and_says_so_once(first_run):
    assert first_run["dev_bundle"], "no development certificate in the catalog"
    assert first_run["out"].count("content credentials:") == 1 and "do not trust" in first_run["out"]
    run = json.loads((first_run["catalog"] / "_runs" / first_run["run_id"] / "run.json").read_text())
    bundle = first_run["catalog"] / "_credentials" / "development-signer.pem"
    assert run["signing"] == {"mode": "development", "bundle": str(bundle)}


def test_bad_rows_are_quarantined_with_specific_reasons(first_run):
    ledger = ledger_of(str(first_run["catalog"]), first_run["run_id"])
    assert len(ledger) == 9  # one ledger row per manifest row, the duplicate id twice
    bad = ledger[ledger.row_id.isin(BAD)]
    assert set(bad.status) == {"quarantined"}, bad[["row_id", "status", "reason"]]
    reasons = {row_id: " ".join(group.reason).lower() for row_id, group in bad.groupby("row_id")}
    assert "consent" in reasons["no-consent"]
    assert "face" in reasons["no-face"]
    assert "duplicate" in reasons["twice"]
    assert "duration" in reasons["duration-off"]
    assert reasons["corrupt-image"] and reasons["not-audio"]
    assert len(set(reasons.values())) == len(reasons), "two different problems share one reason"
    assert not (first_run["catalog"] / "course" / "de" / "no-face.mp4").exists()


def test_report_and_ledger_are_written_for_the_run(first_run):
    run_dir = first_run["catalog"] / "_runs" / first_run["run_id"]
    page = (run_dir / "report.html").read_text()
    assert "good-en" in page and "no-consent" in page and "quarantined" in page
    assert list((run_dir / "plots").rglob("*.png"))
    assert json.loads((run_dir / "run.json").read_text())["manifest"] == str(first_run["manifest"])


def test_rerun_renders_only_the_fixed_row(first_run):
    catalog = first_run["catalog"]
    good_sidecar = catalog / "course" / "en" / "good-en.json"
    before = good_sidecar.stat().st_mtime_ns
    shutil.copy(FIXTURES / "portrait_hopper.jpg", first_run["root"] / "media" / "broken.jpg")

    code, out, err = run_cli("rerun", "--catalog", str(catalog))

    assert code == 2, out + err  # the other bad rows are still bad
    ledger = ledger_of(str(catalog), run_id_of(out))
    assert set(ledger[ledger.status == "published"].row_id) == {"corrupt-image"}
    assert set(ledger.row_id) == BAD  # only the rows that had not published were looked at
    assert (catalog / "course" / "de" / "corrupt-image.mp4").exists()
    assert good_sidecar.stat().st_mtime_ns == before
    assert "corrupt-image" in set(pd.read_parquet(catalog / "index.parquet").row_id)


def task_runs(catalog: Path, run_id: str) -> list:
    """The task runs of one catalog run's flow run (its id is in run.json), from the Prefect API."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = json.loads((catalog / "_runs" / run_id / "run.json").read_text())["flow_run_id"]
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))


def task_run_names(catalog: Path, run_id: str) -> set[str]:
    return {run.name for run in task_runs(catalog, run_id)}


def test_each_stage_records_the_task_run_it_follows(first_run):
    """The stages hand their results on `opaque` (not walked field by field, flows/row_stages.py),
    and Prefect still records where each came from: a row's lineage is probe -> render -> publish."""
    runs = {run.name: run for run in task_runs(first_run["catalog"], first_run["run_id"])}
    for row_id in GOOD:
        probe, render, publish = (runs[f"{stage}-{row_id}"] for stage in ("probe", "render", "check-publish"))
        assert [source.id for source in render.task_inputs["probed"]] == [probe.id]
        assert [source.id for source in publish.task_inputs["rendered"]] == [render.id]
        assert render.task_inputs["choice"] == [] and publish.task_inputs["thresholds"] == []  # quoted constants


def test_rendering_the_same_manifest_again_renders_nothing(first_run):
    catalog = first_run["catalog"]
    code, out, err = run_cli("render", str(first_run["manifest"]), "--catalog", str(catalog))
    assert code == 2, out + err
    ledger = ledger_of(str(catalog), run_id_of(out))
    assert "published" not in set(ledger.status)
    assert GOOD <= set(ledger[ledger.status == "skipped_cached"].row_id)
    # The catalog's development certificate was made once and never replaced.
    assert (catalog / "_credentials" / "development-signer.pem").read_bytes() == first_run["dev_bundle"]
    # The run's plan (tasks/plan.py) settles the unchanged rows in one step: they get no task of
    # their own (no probe, no lookup, no render); see tests/test_nightly.py for the rest.
    names = task_run_names(catalog, run_id_of(out))
    assert not [name for name in names if name.endswith(tuple(GOOD))], names
    assert not [name for name in names if name.startswith(("render-", "check-publish-", "find-published-"))], names
    assert "plan-run" in names


def test_run_info_is_written_at_start_and_end_and_listeners_hear_only_their_runs(tmp_path):
    """run.json holds the same run info before and after the run (plus the results at the end);
    an outcome listener hears every verdict of a run started inside its block, and nothing after."""
    from flows.render_catalog import render_catalog
    from flows.run_record import RunInfo, outcome_listener

    durations = write_media(tmp_path / "media")
    manifest = tmp_path / "manifest.parquet"
    rows = [r for r in manifest_rows(durations) if r["row_id"] in ("no-consent", "twice", "no-face")]
    pd.DataFrame(rows).to_parquet(manifest)
    catalog = tmp_path / "catalog"
    heard = []
    with outcome_listener(heard.append):
        summary = render_catalog(manifest=str(manifest), catalog=str(catalog), limits={"max_pixels": 20_000_000})
    assert sorted(o.info.row_id for o in heard) == ["no-consent", "no-face", "twice", "twice"]
    assert {o.status for o in heard} == {"quarantined"}
    info = json.loads((catalog / "_runs" / summary["run_id"] / "run.json").read_text())
    fields = set(RunInfo.__dataclass_fields__)
    assert fields <= set(info) and info["flow_run_id"] and info["limits"]["max_pixels"] == 20_000_000
    assert {key: info[key] for key in summary} == summary  # the results, added at the end
    render_catalog(manifest=str(manifest), catalog=str(catalog))
    assert len(heard) == 4  # the listener's block had ended


def test_unusable_manifest_is_one_line_and_exit_1(tmp_path):
    bogus = tmp_path / "manifest.parquet"
    bogus.write_text("row_id,portrait_uri\n")
    code, out, err = run_cli("render", str(bogus), "--catalog", str(tmp_path / "catalog"))
    assert code == 1
    assert err.startswith("error: ") and "Traceback" not in err


# --- the same on remote catalogs ----------------------------------------------------------------


def small_manifest(root: Path) -> Path:
    durations = write_media(root / "media")
    rows = [r for r in manifest_rows(durations) if r["row_id"] in ("good-de", "no-consent")]
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    return manifest


def assert_catalog_like_local(catalog: str, manifest: Path) -> None:
    code, out, err = run_cli("render", str(manifest), "--catalog", catalog)
    assert code == 2, out + err
    fs, root = fsspec.core.url_to_fs(catalog)
    root = root.rstrip("/")
    run_id = run_id_of(out)
    ledger = ledger_of(catalog, run_id)
    assert dict(zip(ledger.row_id, ledger.status, strict=False)) == {
        "good-de": "published",
        "no-consent": "quarantined",
    }
    for suffix in (".mp4", ".jpg", ".json"):
        assert fs.exists(f"{root}/course/de/good-de{suffix}")
    assert_signed(fs.cat(f"{root}/course/de/good-de.mp4"), json.loads(fs.cat(f"{root}/course/de/good-de.json")))
    bundle = fs.cat(f"{root}/_credentials/development-signer.pem")
    with fs.open(f"{root}/index.parquet", "rb") as handle:
        assert list(pd.read_parquet(handle).row_id) == ["good-de"]
    assert fs.exists(f"{root}/_runs/{run_id}/report.html")
    assert not [p for p in fs.find(root) if ".partial" in p]

    code, out, err = run_cli("render", str(manifest), "--catalog", catalog)
    ledger = ledger_of(catalog, run_id_of(out))
    assert dict(zip(ledger.row_id, ledger.status, strict=False))["good-de"] == "skipped_cached"
    assert fs.cat(f"{root}/_credentials/development-signer.pem") == bundle


def test_memory_catalog_behaves_like_local(tmp_path):
    assert_catalog_like_local("memory://catalog-test", small_manifest(tmp_path))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def moto_s3(monkeypatch):
    """A moto S3 server on 127.0.0.1, with s3fs pointed at it; stopped afterwards."""
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(executable).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    server = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.2)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setitem(
            fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True}
        )
        fs = fsspec.filesystem("s3")
        fs.mkdir("catalog-bucket")
        yield "s3://catalog-bucket/catalog"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_s3_catalog_behaves_like_local(tmp_path, moto_s3):
    assert_catalog_like_local(moto_s3, small_manifest(tmp_path))


def test_video_failing_qa_is_kept_under_the_run_not_published(tmp_path):
    manifest = small_manifest(tmp_path)
    catalog = tmp_path / "catalog"
    code, out, err = run_cli(
        "render", str(manifest), "--catalog", str(catalog), "--qa-threshold", "min_sync_correlation=0.99"
    )
    assert code == 2, out + err
    ledger = ledger_of(str(catalog), run_id_of(out))
    failed = ledger[ledger.row_id == "good-de"].iloc[0]
    assert failed.status == "failed_qa" and "sync" in failed.reason
    assert "/_runs/" in failed.output_uri and Path(failed.output_uri).exists()
    assert not (catalog / "course" / "de" / "good-de.mp4").exists()
    assert pd.read_parquet(catalog / "index.parquet").empty


def test_console_script_shows_no_prefect_noise(tmp_path):
    """As a user runs it (own process, own ephemeral API): our lines only, no Prefect logs or tracebacks."""
    durations = write_media(tmp_path / "media")
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame([r for r in manifest_rows(durations) if r["row_id"] == "no-consent"]).to_parquet(manifest)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    result = subprocess.run(
        [sys.executable, "-m", "sonic_catalog.cli", "render", str(manifest), "--catalog", str(tmp_path / "catalog")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("run ") and "1 quarantined" in result.stdout
    for noise in ("Traceback", "Error flushing", "CancelledError", "Starting temporary server", "| INFO", "| ERROR"):
        assert noise not in result.stderr, result.stderr


def test_flow_run_publishes_table_and_markdown_artifacts(first_run):
    from prefect.artifacts import Artifact

    table = Artifact.get("catalog-run-ledger")
    summary = Artifact.get("catalog-run-summary")
    assert table is not None and table.type == "table"
    assert summary is not None and summary.type == "markdown" and "Catalog run" in summary.data
