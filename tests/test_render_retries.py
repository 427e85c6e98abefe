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

from sonic_model.preview.generator import PreviewGenerator
from tasks.render import register_generator

FIXTURES = Path(__file__).parent / "fixtures"
LOADS = Counter()
FAILURES = Counter()


class FlakyGenerator(PreviewGenerator):
    name = "flaky-test"
    version = "1.0-test"

    def frames(self, portrait_rgb, audio, params):
        astronaut = portrait_rgb.shape[0] == portrait_rgb.shape[1]  # the astronaut is square, Hopper is not
        if astronaut or FAILURES["hopper"] == 0:
            FAILURES["astronaut" if astronaut else "hopper"] += 1
            raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        yield from super().frames(portrait_rgb, audio, params)


def make_flaky(weights=None):
    LOADS["flaky"] += 1
    return FlakyGenerator()


make_flaky.version = FlakyGenerator.version


def test_render_is_retried_with_a_fresh_generator_and_reports_attempts(tmp_path):
    from PIL import Image

    assert Image.open(FIXTURES / "portrait_astronaut.jpg").size == (512, 512)
    assert Image.open(FIXTURES / "portrait_hopper.jpg").size == (512, 600)
    register_generator("flaky-test", make_flaky)
    media = tmp_path / "media"
    media.mkdir()
    for name in ("portrait_astronaut.jpg", "portrait_hopper.jpg", "speech_de_48k_stereo.wav"):
        shutil.copy(FIXTURES / name, media / name)
    rows = [{"row_id": row_id, "portrait_uri": f"media/{portrait}", "audio_uri": "media/speech_de_48k_stereo.wav", "language": "de",
             "consent_ref": "release/test-001", "min_resolution": 256}
            for row_id, portrait in (("gone", "portrait_astronaut.jpg"), ("recovers", "portrait_hopper.jpg"))]
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)

    from flows.render_catalog import render_catalog

    summary = render_catalog(manifest=str(manifest), catalog=str(tmp_path / "catalog"), generator="flaky-test",
                             concurrency=1, render_retries=2, retry_delay_s=0.1)
    ledger = pd.read_parquet(summary["ledger"]).set_index("row_id")
    assert ledger.loc["recovers", "status"] == "published", ledger.loc["recovers", "reason"]
    assert ledger.loc["gone", "status"] == "error"
    assert ledger.loc["gone", "reason"].startswith("render failed after 3 attempts (retry policy: 2 retries, 0.1 s apart); "
                                                  "last error: RuntimeError: CUDA error"), ledger.loc["gone", "reason"]
    assert FAILURES == {"astronaut": 3, "hopper": 1}
    # Every failure dropped the cached generator, so each attempt after one loaded a fresh one.
    assert LOADS["flaky"] == FAILURES["astronaut"] + FAILURES["hopper"] + 1
