"""`sonic-catalog parity` on the committed dev fixture: passes, and notices a wrong reference.

The two command-line runs each run the whole tiny pipeline in a fresh process (~1 min each on
2 cores): they are slow tests. The default run keeps the pipeline's parity in-process
(`tests/test_sonic_parity.py`) and here the comparison that must single out a changed stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from sonic_model.sonic.parity import compare, format_parity_table

DEV_FIXTURE = Path(__file__).parent / "fixtures" / "sonic_parity_dev"


def run_parity_cli(fixture: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sonic_catalog.cli", "parity", str(fixture), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_parity_command_passes_on_the_dev_fixture(tmp_path):
    done = run_parity_cli(DEV_FIXTURE, tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "58/58 stages within tolerance" in done.stdout
    for name in ("audio.waveform_16k", "clip.image_embeds", "sampler.latents_final", "video.frames_uint8"):
        assert name in done.stdout
    stages = load_file(tmp_path / "out" / "stages.safetensors")
    frames = load_file(tmp_path / "out" / "frames.safetensors")
    assert "audio2token.cond_tokens" in stages and "rife.middle_frames" in frames


@pytest.mark.slow
def test_parity_command_fails_when_a_stage_differs(tmp_path):
    fixture = tmp_path / "fixture"
    shutil.copytree(DEV_FIXTURE, fixture)
    stages = load_file(fixture / "stages.safetensors")
    stages["clip.image_embeds"] = stages["clip.image_embeds"] + 0.01 * stages["clip.image_embeds"].abs().max() + 1e-3
    save_file(stages, fixture / "stages.safetensors")
    done = run_parity_cli(fixture, tmp_path / "out")
    assert done.returncode == 1
    failing = [line for line in done.stdout.splitlines() if line.split() and line.split()[-1] == "FAIL"]
    assert len(failing) == 1 and failing[0].startswith("clip.image_embeds")
    assert "57/58 stages within tolerance; FAILED: clip.image_embeds" in done.stdout


def test_a_stage_off_by_one_percent_is_the_only_failure_in_the_table():
    reference = load_file(DEV_FIXTURE / "stages.safetensors")
    ours = dict(reference)
    ours["clip.image_embeds"] = (
        reference["clip.image_embeds"] + 0.01 * reference["clip.image_embeds"].abs().max() + 1e-3
    )
    results = [compare(name, ours[name], reference[name]) for name in sorted(reference)]
    assert [r.name for r in results if not r.passed] == ["clip.image_embeds"]
    table = format_parity_table(results)
    assert f"{len(results) - 1}/{len(results)} stages within tolerance; FAILED: clip.image_embeds" in table
    within = compare("clip.image_embeds", reference["clip.image_embeds"] * (1 + 1e-5), reference["clip.image_embeds"])
    assert within.passed  # a float32 rounding difference is not a failure
