"""render_video with renditions, loudness normalisation and presets, end to end with the preview
generator: the issue's "done when" (a vertical rendition of a landscape photo with the face off
centre), and the options on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import render_one

from sonic_model.audio import load_audio
from sonic_model.delivery import still_reference
from sonic_model.errors import ParameterError
from sonic_model.face import detect_faces, face_landmarks, largest_face
from sonic_model.generators import RenderParams, create_generator
from sonic_model.image import load_image
from sonic_model.loudness_meter import integrated_loudness
from sonic_model.qa import QAThresholds, check_video, decode_audio_track
from sonic_model.render import render_video
from sonic_model.renditions import RENDITIONS, framing
from sonic_model.video_reader import iter_video_frames, peak_video_bitrate, probe_video

FIXTURES = Path(__file__).parent / "fixtures"
LANDSCAPE = FIXTURES / "landscape_offcentre.jpg"
SPEECH = FIXTURES / "speech_en_pause_16k.wav"


@pytest.fixture(scope="module")
def vertical_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("vertical") / "talk.mp4"
    params = RenderParams(min_resolution=384, renditions=("vertical",))
    result = render_video(create_generator("preview"), LANDSCAPE, SPEECH, out, params)
    return result, out


def test_vertical_rendition_of_an_off_centre_landscape_photo(vertical_render):
    result, out = vertical_render
    (entry,) = result.renditions
    vertical = Path(entry["path"])
    assert entry["name"] == "vertical" and vertical == out.with_name("talk.vertical.mp4")
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no hidden first passes left
    info = probe_video(vertical)
    assert (info.width, info.height) == (1080, 1920) and info.num_frames == result.frames
    # A constant quantiser, checked against the platforms' cap: no second of the stream above it.
    assert peak_video_bitrate(vertical) <= 8e6
    audio = load_audio(SPEECH)
    portrait = load_image(LANDSCAPE)
    # QA on its own: duration, sync, face and identity, loudness at the target, no seam.
    thresholds = QAThresholds(loudness_target_lufs=-14.0, expected_width=1080, expected_height=1920)
    qa = check_video(
        vertical, portrait, audio, thresholds, still_reference=still_reference(portrait, "vertical", paste_back=False)
    )
    assert qa.passed, qa.failures
    assert qa.figures["seam_strength"] < thresholds.max_seam_strength
    assert abs(qa.figures["loudness_lufs"] - -14.0) <= 0.5 and qa.figures["true_peak_dbtp"] <= -1.0
    assert abs(qa.figures["av_offset_frames"]) <= 1 and qa.figures["face_present_ratio"] == 1.0


def test_vertical_rendition_keeps_the_face_framed_and_the_surroundings_still(vertical_render):
    result, out = vertical_render
    portrait = load_image(LANDSCAPE)
    landmarks = face_landmarks(portrait, largest_face(portrait))
    placement = framing(landmarks, RENDITIONS["vertical"])
    face = placement.points(landmarks[:, :2])
    frames = [frame for index, frame in iter_video_frames(out.with_name("talk.vertical.mp4"), step=10)]
    found = detect_faces(frames[len(frames) // 2])
    assert len(found) == 1
    assert found[0].x < face[:, 0].mean() < found[0].x + found[0].w  # where the framing rule put it
    stack = np.stack(frames).astype(np.float32)
    spread = stack.max(axis=0) - stack.min(axis=0)
    # Far from the head (the top 15 % and bottom 20 % of the frame): still. At a constant quantiser
    # x264 codes the still canvas once and skips it after (0.04 grey levels measured here, top and
    # bottom); under a rate control it re-coded it, within 0.35-0.98 levels at CRF 20 and ~1.4 at an
    # average 6 Mb/s. The composited frames themselves are bit for bit the still canvas there
    # (test_composite_renditions.py).
    assert spread[: int(0.15 * 1920)].mean() < 0.3 and spread[int(0.8 * 1920) :].mean() < 0.3
    # The face does move.
    y0, y1 = int(face[:, 1].min()), int(face[:, 1].max())
    x0, x1 = int(face[:, 0].min()), int(face[:, 0].max())
    assert spread[y0:y1, x0:x1].mean() > 5


def test_master_sound_is_normalised_and_off_keeps_the_scripts_level(tmp_path, vertical_render):
    result, out = vertical_render
    assert result.loudness["target_lufs"] == -14.0
    samples, rate = decode_audio_track(out)
    assert rate == 48000 and samples.shape[1] == 2
    assert integrated_loudness(samples, rate) == pytest.approx(-14.0, abs=0.5)
    plain = render_video(
        create_generator("preview"),
        load_image(LANDSCAPE),
        SPEECH,
        tmp_path / "plain.mp4",
        RenderParams(min_resolution=256, loudness_target=None, lipsync_calibration=False, motion_smoothing=0),
    )
    assert plain.loudness is None and plain.renditions == []
    samples, rate = decode_audio_track(tmp_path / "plain.mp4")
    original, original_rate = decode_audio_track(SPEECH)
    assert integrated_loudness(samples, rate) == pytest.approx(integrated_loudness(original, original_rate), abs=0.5)


def test_render_params_resolve_presets_and_check_names():
    fast = RenderParams.resolve("fast", {"seed": 7})
    assert (fast.preset, fast.inference_steps, fast.min_resolution, fast.seed) == ("fast", 12, 384, 7)
    assert fast.explicit == ("seed",)
    hq = RenderParams.resolve("high-quality", {"inference_steps": 30})
    assert (
        hq.inference_steps == 30
        and hq.min_resolution == 768
        and hq.renditions == ("master", "vertical", "square", "landscape")
    )
    # A row's own preset replaces the run's settings, but not what the run gave explicitly.
    row = hq.with_preset("fast")
    assert row.preset == "fast" and row.min_resolution == 384 and row.inference_steps == 30
    assert RenderParams(renditions=["square", "vertical"]).validated().renditions == ("master", "vertical", "square")
    assert RenderParams(loudness_target="off").validated().loudness_target is None
    with pytest.raises(ParameterError, match="unknown rendition"):
        RenderParams(renditions=("portrait",)).validated()
    with pytest.raises(ParameterError, match="unknown preset"):
        RenderParams.resolve("turbo")
    # The preset's name travels with the parameters (sidecar, content key).
    assert RenderParams.resolve("fast").as_dict()["preset"] == "fast"


def test_render_one_cli_preset_rendition_and_loudness_target(tmp_path):
    out = tmp_path / "talk.mp4"
    done = render_one(
        FIXTURES / "portrait_hopper.jpg",
        SPEECH,
        out,
        *"--preset fast --min-resolution 256 --rendition square --loudness-target -16 --json".split(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["width"], result["height"]) == (256, 256)  # the explicit option beat the preset's 384
    assert [r["name"] for r in result["renditions"]] == ["square"]
    assert result["loudness"]["target_lufs"] == -16.0
    square = out.with_name("talk.square.mp4")
    info = probe_video(square)
    assert (info.width, info.height) == (1080, 1080) and info.audio_sample_rate == 48000
    samples, rate = decode_audio_track(square)
    assert integrated_loudness(samples, rate) == pytest.approx(-16.0, abs=0.5)
    # Signed each (C2PA): the rendition carries its own manifest, naming it.
    from sonic_model.credentials import read_credentials

    claims = read_credentials(square)
    assert claims.status == "valid" and claims.sonic["rendition"] == "square"
    assert result["credentials"]["renditions"]["square"]["manifest_label"] == claims.manifest_label
    assert read_credentials(out).sonic["rendition"] == "master"
    bad = render_one(FIXTURES / "portrait_hopper.jpg", SPEECH, out, "--loudness-target", "loud", timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: loudness target 'loud' is not a number")


def test_manifest_row_preset_and_renditions_columns():
    from manifests.schema import ManifestRow

    base = dict(row_id="r", portrait_uri="p.jpg", audio_uri="a.wav", language="en", consent_ref="c")
    run = RenderParams.resolve(None, {"seed": 3, "min_resolution": 256})  # the run gave these explicitly
    params = ManifestRow(**base, preset="fast", inference_steps=30, renditions="square,vertical").render_params(run)
    assert params.preset == "fast"
    assert params.inference_steps == 30  # the row's own column beats its preset
    assert params.min_resolution == 256 and params.seed == 3  # the run's explicit options beat the row's preset
    assert params.motion_smoothing == 1.0  # the rest comes from the preset
    assert params.renditions == ("master", "vertical", "square")
    assert ManifestRow(**base).render_params(run) == run
    with pytest.raises(ParameterError, match="unknown rendition"):
        ManifestRow(**base, renditions="vertical,poster").render_params(run)
    with pytest.raises(ParameterError, match="unknown preset"):
        ManifestRow(**base, preset="ultra").render_params(run)
