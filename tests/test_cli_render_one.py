"""`sonic-catalog render-one` as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import render_one, run_cli
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def test_render_one_json_reports_the_video(tmp_path):
    out = tmp_path / "talk.mp4"
    done = render_one(
        FIXTURES / "portrait_hopper.jpg", FIXTURES / "speech_es_44k.mp3", out, "--min-resolution", "256", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["output_path"] == str(out) and out.exists()
    assert (result["width"], result["height"], result["fps"]) == (256, 256, 25)
    assert abs(result["video_duration_s"] - result["audio_duration_s"]) <= 1 / 25
    assert result["frames"] == round(result["audio_duration_s"] * 25)
    assert result["seconds"] > 0
    assert "Traceback" not in done.stderr and "INFO" not in done.stderr
    # Signed with Content Credentials (nothing configured: the user's development certificate).
    from sonic_model.credentials import read_credentials

    assert result["credentials"]["development"] is True and result["credentials"]["manifest_label"]
    report = read_credentials(out)
    assert report.status == "valid" and report.ai_generated
    assert report.manifest_label == result["credentials"]["manifest_label"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    text_image = tmp_path / "photo.jpg"
    text_image.write_text("not an image\n" * 20)
    landscape = tmp_path / "landscape.png"
    rng = np.random.default_rng(0)
    sky = np.linspace(40, 220, 300, dtype=np.float32)[:, None, None] * np.ones((300, 400, 3), np.float32)
    Image.fromarray(np.clip(sky + rng.normal(0, 4, sky.shape), 0, 255).astype(np.uint8)).save(landscape)
    empty_audio = tmp_path / "empty.wav"
    empty_audio.write_bytes(b"")
    text_audio = tmp_path / "speech.wav"
    text_audio.write_text("not audio\n" * 100)
    portrait = str(FIXTURES / "portrait_astronaut.jpg")
    audio = str(FIXTURES / "speech_en_16k.wav")
    out = str(tmp_path / "out.mp4")
    return {
        "unreadable image": (["--portrait", str(text_image), "--audio", audio, "--out", out], "not a readable image"),
        "no face": (["--portrait", str(landscape), "--audio", audio, "--out", out], "no face found"),
        "empty audio": (["--portrait", portrait, "--audio", str(empty_audio), "--out", out], "empty file"),
        "undecodable audio": (["--portrait", portrait, "--audio", str(text_audio), "--out", out], "cannot be decoded"),
        "unwritable output": (
            ["--portrait", portrait, "--audio", audio, "--out", "/proc/no/such/dir/out.mp4"],
            "cannot write output",
        ),
        "out of range": (
            ["--portrait", portrait, "--audio", audio, "--out", out, "--dynamic-scale", "9"],
            "dynamic_scale=9.0 is out of range",
        ),
    }


@pytest.mark.parametrize(
    "case", ["unreadable image", "no face", "empty audio", "undecodable audio", "unwritable output", "out of range"]
)
def test_bad_input_exits_1_with_one_clear_line(tmp_path, case):
    args, expected = _bad_inputs(tmp_path)[case]
    done = run_cli("render-one", *args)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.slow  # ~25 s on 2 cores: a fresh process imports torch and renders the whole script
def test_render_one_with_the_sonic_generator_on_the_tiny_checkpoint(tmp_path):
    out = tmp_path / "sonic.mp4"
    done = render_one(
        FIXTURES / "portrait_hopper.jpg",
        FIXTURES / "speech_zh_16k.flac",
        out,
        "--generator",
        "sonic",
        "--weights",
        str(FIXTURES / "sonic_parity_dev" / "checkpoints"),
        *"--min-resolution 128 --inference-steps 2 --json".split(),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["generator"] == "sonic" and (result["width"], result["height"]) == (128, 128)
    assert abs(result["video_duration_s"] - result["audio_duration_s"]) <= 1 / 25


def test_sonic_generator_without_weights_lists_what_is_missing(tmp_path):
    done = render_one(
        FIXTURES / "portrait_hopper.jpg",
        FIXTURES / "speech_zh_16k.flac",
        tmp_path / "out.mp4",
        "--generator",
        "sonic",
        "--weights",
        str(tmp_path),
    )
    assert done.returncode == 1
    assert "Sonic/unet.pth" in done.stderr and "whisper-tiny/model.safetensors" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.mp4").exists()


@pytest.mark.slow  # ~20 s on 2 cores: a render with a 1080x1920 rendition, alignment, the burn
def test_render_one_burns_captions_into_the_rendition_only(tmp_path):
    import av

    out = tmp_path / "talk.mp4"
    done = render_one(
        FIXTURES / "portrait_astronaut.jpg", FIXTURES / "speech_en_16k.wav", out, "--min-resolution", "256",
        "--rendition", "vertical", "--burn-captions", "--script-text", "Hello, this is a test of the captions.",
        "--no-credentials",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "captions burned into: vertical (Noto Sans)" in done.stdout
    with av.open(str(out)) as master, av.open(str(tmp_path / "talk.vertical.mp4")) as vertical:
        assert len(master.streams.subtitles) == 1  # the master keeps its soft track
        assert not vertical.streams.subtitles and vertical.metadata.get("captions_burned") == "true"
