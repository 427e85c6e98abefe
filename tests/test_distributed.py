"""Fan-out on a real Dask cluster with a real Prefect server, all on 127.0.0.1 (issue 5).

`prefect server start`, a `dask scheduler` and two `sonic-catalog worker` processes are
started here and stopped at the end whatever happens. The render path is the real one (the
CLI, the flow, materialize, render_video + encoder, QA, publish); the only test-only piece is
the generator, registered on the workers with `--preload tests/dask_stand_ins.py`: the CPU
preview generator with a pause, so a worker can be killed while it renders, and one that loses
its "model" mid-row.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from local_services import ROOT, LocalServices, kill_tree

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"
STAND_INS = "tests/dask_stand_ins.py"
RUN_TIMEOUT_S = 300
# The real console entry point, with the test generators registered in the flow's process.
CLI = "import sys; sys.path.insert(0, 'tests'); import dask_stand_ins; sys.exit(dask_stand_ins.cli_main(sys.argv[1:]))"


def write_manifest(folder: Path, rows: int, *, collection: str, bad_row: bool = False) -> Path:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    for name in ("portrait_astronaut.jpg", "portrait_hopper.jpg", "speech_en_16k.wav", "speech_de_48k_stereo.wav"):
        shutil.copy(FIXTURES / name, media / name)
    pairs = [
        ("portrait_astronaut.jpg", "speech_en_16k.wav", "en"),
        ("portrait_hopper.jpg", "speech_de_48k_stereo.wav", "de"),
    ]
    records = []
    for index in range(rows):
        portrait, audio, language = pairs[index % 2]
        records.append(
            {
                "row_id": f"{collection}-{index:02d}",
                "portrait_uri": f"media/{portrait}",
                "audio_uri": f"media/{audio}",
                "language": language,
                "consent_ref": "release/test-001",
                "collection": collection,
                "min_resolution": 256,
                "seed": index,
            }
        )
    if bad_row:
        records.append({**records[0], "row_id": f"{collection}-no-consent", "consent_ref": None})
    path = folder / f"{collection}.parquet"
    pd.DataFrame(records).to_parquet(path)
    return path


def render_on_cluster(
    services: LocalServices, manifest: Path, catalog: Path, generator: str, *options: str
) -> subprocess.Popen:
    """`sonic-catalog render MANIFEST --catalog C --generator G --cluster SCHEDULER OPTIONS...`, started."""
    argv = ["render", str(manifest), "--catalog", str(catalog), "--generator", generator]
    argv += ["--cluster", services.scheduler, *options]
    env = services.env(PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL")
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def ledger(catalog: Path) -> pd.DataFrame:
    runs = sorted((catalog / "_runs").iterdir())
    return pd.read_parquet(runs[-1] / "ledger.parquet")


def rendering_worker(services: LocalServices, markers: Path, timeout: float) -> subprocess.Popen:
    """The worker (its `sonic-catalog worker` process tree) on which a render is under way."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {int(marker.name.split("-")[1]) for marker in markers.glob("rendering-*")}
        for worker in services.workers:
            tree = {worker.pid} | {child.pid for child in psutil.Process(worker.pid).children(recursive=True)}
            if pids & tree:
                return worker
        time.sleep(0.1)
    raise TimeoutError("no worker started rendering")


@pytest.fixture
def cluster(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    services = LocalServices(
        tmp_path / "services",
        workers=2,
        preload=STAND_INS,
        worker_env={"SONIC_TEST_RENDER_DELAY_S": "3", "SONIC_TEST_MARKER_DIR": str(markers)},
    )
    with services:
        services.markers = markers
        yield services


def test_killed_worker_loses_no_row_and_publishes_each_once(cluster, tmp_path):
    manifest = write_manifest(tmp_path / "in", 8, collection="fanout", bad_row=True)
    catalog = tmp_path / "catalog"
    started = time.monotonic()
    cli = render_on_cluster(cluster, manifest, catalog, "slow-preview", "--retry-delay", "1")
    try:
        victim = rendering_worker(cluster, cluster.markers, timeout=180)
        kill_tree(victim)  # the nanny and the worker process: the whole `sonic-catalog worker` tree
        assert victim.poll() is not None
        output, _ = cli.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if cli.poll() is None:
            kill_tree(cli)
    elapsed = time.monotonic() - started
    assert cli.returncode == 2, output  # 8 published + 1 quarantined (no consent)
    assert "Traceback" not in output, output

    table = ledger(catalog)
    assert len(table) == 9 and table["row_id"].is_unique
    published = table[table["status"] == "published"]
    assert sorted(published["row_id"]) == [f"fanout-{i:02d}" for i in range(8)], table[["row_id", "status", "reason"]]
    assert table.set_index("row_id").loc["fanout-no-consent", "status"] == "quarantined"

    # Exactly once: one index entry, video, poster and sidecar per good row; nothing half-written
    # under a final name (every video decodes for its full length).
    from sonic_model.credentials import read_credentials
    from sonic_model.video_reader import probe_video

    index = pd.read_parquet(catalog / "index.parquet")
    assert len(index) == 8 and index["key"].is_unique and index["row_id"].is_unique
    videos = sorted(p for p in catalog.rglob("*.mp4") if "_runs" not in p.parts)
    assert len(videos) == 8
    for video in videos:
        sidecar = json.loads(video.with_suffix(".json").read_text())
        assert sidecar["qa"]["passed"] and sidecar["generator"]["name"] == "slow-preview"
        assert video.with_suffix(".jpg").stat().st_size > 0
        facts = probe_video(video)
        assert facts.num_frames > 0 and abs(facts.video_duration_s - sidecar["inputs"]["audio_duration_s"]) < 0.1
        # Signed on the worker that published it, with the catalog's development certificate.
        credentials = read_credentials(video)
        assert credentials.status == "valid" and credentials.manifest_label == sidecar["credentials"]["manifest_label"]
        assert credentials.sonic["row_id"] == sidecar["row_id"]
    # The shared scratch of the run (and any attempt the dead worker left) is gone.
    assert not list(catalog.glob("_runs/*/scratch"))
    # The dead worker really was rendering when it died: its row was rendered again elsewhere.
    assert len(list(cluster.markers.glob("rendering-*"))) >= 9
    print(f"fan-out run with a killed worker: {elapsed:.1f} s")


def test_lost_model_is_retried_then_reported(cluster, tmp_path):
    manifest = write_manifest(tmp_path / "in", 1, collection="lost")
    catalog = tmp_path / "catalog"
    cli = render_on_cluster(cluster, manifest, catalog, "lost-model", "--render-retries", "2", "--retry-delay", "0.5")
    try:
        output, _ = cli.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if cli.poll() is None:
            kill_tree(cli)
    assert cli.returncode == 2, output
    row = ledger(catalog).iloc[0]
    assert row["status"] == "error"
    assert row["reason"].startswith("render failed after 3 attempts (retry policy: 2 retries, 0.5 s apart)"), row[
        "reason"
    ]
    assert "RuntimeError: CUDA error" in row["reason"]
    assert len(list(cluster.markers.glob("lost-*"))) == 3  # one per attempt
    assert not list(catalog.rglob("*.mp4"))
