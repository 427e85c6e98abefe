"""Render retry policy, in one process (the same Prefect task options apply on a cluster; the
cluster version of the lost-model case is in test_distributed.py).

A stand-in generator loses its "model" mid-row: for the astronaut portrait on every attempt,
for the Hopper portrait on the first attempt only. The cached generator must be dropped after
each failure (so the retry loads a fresh one), a row that recovers is published, and a row
whose retries run out ends `error` with a reason naming the attempts and the last error.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd

from sonic_model.generators import register_generator
from sonic_model.preview.generator import PreviewGenerator

FIXTURES = Path(__file__).parent / "fixtures"
LOADS = Counter()
FAILURES = Counter()


class FlakyGenerator(PreviewGenerator):
    name = "flaky-test"
    version = "1.0-test"

    def frames(self, portrait_rgb, audio, params, *, face_box=None):
        astronaut = portrait_rgb.shape[0] == portrait_rgb.shape[1]  # the astronaut is square, Hopper is not
        if astronaut or FAILURES["hopper"] == 0:
            FAILURES["astronaut" if astronaut else "hopper"] += 1
            raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        yield from super().frames(portrait_rgb, audio, params, face_box=face_box)


def make_flaky(weights=None):
    LOADS["flaky"] += 1
    return FlakyGenerator()


def test_render_is_retried_with_a_fresh_generator_and_reports_attempts(tmp_path):
    from PIL import Image

    assert Image.open(FIXTURES / "portrait_astronaut.jpg").size == (512, 512)
    assert Image.open(FIXTURES / "portrait_hopper.jpg").size == (512, 600)
    register_generator("flaky-test", make_flaky, version=FlakyGenerator.version)
    media = tmp_path / "media"
    media.mkdir()
    for name in ("portrait_astronaut.jpg", "portrait_hopper.jpg", "speech_de_48k_stereo.wav"):
        shutil.copy(FIXTURES / name, media / name)
    rows = [
        {
            "row_id": row_id,
            "portrait_uri": f"media/{portrait}",
            "audio_uri": "media/speech_de_48k_stereo.wav",
            "language": "de",
            "consent_ref": "release/test-001",
            "min_resolution": 256,
        }
        for row_id, portrait in (("gone", "portrait_astronaut.jpg"), ("recovers", "portrait_hopper.jpg"))
    ]
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)

    from flows.render_catalog import render_catalog

    summary = render_catalog(
        manifest=str(manifest),
        catalog=str(tmp_path / "catalog"),
        generator="flaky-test",
        concurrency=1,
        render_retries=2,
        retry_delay_s=0.1,
    )
    ledger = pd.read_parquet(summary["ledger"]).set_index("row_id")
    assert ledger.loc["recovers", "status"] == "published", ledger.loc["recovers", "reason"]
    assert ledger.loc["gone", "status"] == "error"
    assert ledger.loc["gone", "reason"].startswith(
        "render failed after 3 attempts (retry policy: 2 retries, 0.1 s apart); last error: RuntimeError: CUDA error"
    ), ledger.loc["gone", "reason"]
    assert FAILURES == {"astronaut": 3, "hopper": 1}
    # Every failure dropped the cached generator, so each attempt after one loaded a fresh one.
    assert LOADS["flaky"] == FAILURES["astronaut"] + FAILURES["hopper"] + 1


# --- generation slots (tasks/render.py): two renders in flight per GPU, generating one at a time


def _probed_rows(tmp_path, count):
    from manifests.schema import ManifestRow
    from tasks.probe import probe_media

    media = tmp_path / "media"
    media.mkdir()
    for name in ("portrait_hopper.jpg", "speech_de_48k_stereo.wav"):
        shutil.copy(FIXTURES / name, media / name)
    manifest = str(tmp_path / "manifest.parquet")
    return [
        probe_media(
            ManifestRow(
                row_id=f"slot-{i}",
                portrait_uri="media/portrait_hopper.jpg",
                audio_uri="media/speech_de_48k_stereo.wav",
                language="de",
                consent_ref="release/test-001",
            ),
            manifest,
        )
        for i in range(count)
    ]


def _render_concurrently(probed_rows, monkeypatch, tmp_path):
    """render_row for every row at once (a thread each); returns the most generations seen at once."""
    import threading
    import time

    import tasks.render
    from sonic_model.render import RenderResult

    lock, running, most = threading.Lock(), [0], [0]

    def timed_generation(generator, portrait_path, audio_path, out_path, params=None, *, face_box=None):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        Path(out_path).write_bytes(b"not a real video")
        with lock:
            running[0] -= 1
        return RenderResult(
            output_path=str(out_path),
            generator="preview",
            generator_version="x",
            frames=1,
            fps=25,
            width=2,
            height=2,
            video_duration_s=0.04,
            audio_duration_s=4.58,
            seconds=0.3,
        )

    monkeypatch.setattr(tasks.render, "render_video", timed_generation)
    choice = tasks.render.choose_generator("preview")
    threads = [
        threading.Thread(target=tasks.render.render_row, args=(probed, choice), kwargs={"scratch_root": str(tmp_path)})
        for probed in probed_rows
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return most[0]


def test_a_gpu_worker_generates_one_row_per_gpu_at_a_time(tmp_path, monkeypatch):
    from tasks.render import set_generation_slots

    rows = _probed_rows(tmp_path, 4)
    try:
        set_generation_slots(1)  # what the worker set-up does on a 1-GPU worker
        assert _render_concurrently(rows, monkeypatch, tmp_path) == 1
        set_generation_slots(2)
        assert _render_concurrently(rows, monkeypatch, tmp_path) == 2
    finally:
        set_generation_slots(0)
    assert _render_concurrently(rows, monkeypatch, tmp_path) == 4  # a local run: no slots, nothing waits
