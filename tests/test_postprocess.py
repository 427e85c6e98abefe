"""Post-processing on real renders: lip-sync calibration and motion smoothing.

The videos are preview-generator renders of a fixture portrait speaking fixture speech (6 s
with a pause, 256 px to keep the tests quick). Defects are made from those frames, exactly
known: the picture moved by whole frames against the sound (a late picture repeats its first
frames, an early one skips them), or every frame shaken by a small random translation and
rotation. Figures are QA's own measurements (`measure_av_sync`, `head_anchor`/`head_jitter`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_runs import render_one, run_cli

from sonic_model.audio import load_audio
from sonic_model.encode import FPS, VideoWriter, frame_count
from sonic_model.errors import ParameterError
from sonic_model.face import LandmarkTracker
from sonic_model.generators import RenderParams, create_generator
from sonic_model.image import load_image
from sonic_model.postprocess import calibrate_video
from sonic_model.qa import check_video, head_anchor, head_jitter
from sonic_model.render import render_video
from sonic_model.sync import measure_av_sync
from sonic_model.video_reader import iter_video_frames, probe_video

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = FIXTURES / "portrait_hopper.jpg"
SPEECH = FIXTURES / "speech_en_pause_16k.wav"
PLAIN = dict(min_resolution=256, lipsync_calibration=False, motion_smoothing=0.0)


@pytest.fixture(scope="module")
def speech():
    return load_audio(SPEECH)


@pytest.fixture(scope="module")
def preview_frames(speech) -> list[np.ndarray]:
    """The preview generator's frames for the fixture, without any post-processing."""
    generator = create_generator("preview")
    return list(generator.frames(load_image(PORTRAIT), speech, RenderParams(**PLAIN)))


def encode(frames, path: Path, audio_path: Path = SPEECH) -> Path:
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width=width, height=height, num_frames=len(frames), audio_path=audio_path) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def moved_picture(frames: list[np.ndarray], late_frames: int) -> list[np.ndarray]:
    """The same picture `late_frames` later (negative: earlier) against the sound, same length."""
    if late_frames >= 0:
        return [frames[0]] * late_frames + frames[: len(frames) - late_frames]
    early = -late_frames
    return frames[early:] + [frames[-1]] * early


def assert_duration_matches_audio(video: Path, speech) -> None:
    info = probe_video(video)
    assert info.num_frames == frame_count(speech.duration_s)
    assert abs(info.video_duration_s - speech.duration_s) <= 1 / FPS
    assert abs(info.audio_duration_s - speech.duration_s) <= 1 / FPS


def video_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(container.streams.video[0]) if packet.size]


def jitter_of(video: Path) -> float:
    tracker = LandmarkTracker()
    anchors = []
    for _index, rgb in iter_video_frames(video):
        landmarks = tracker(rgb)
        anchors.append(head_anchor(landmarks) if landmarks is not None else (np.nan,) * 3)
    return head_jitter(np.asarray(anchors))


# --- lip-sync calibration ----------------------------------------------------------------------


def test_steady_video_is_copied_unchanged(tmp_path, preview_frames, speech):
    steady = encode(preview_frames, tmp_path / "steady.mp4")
    out = tmp_path / "steady.calibrated.mp4"
    report = calibrate_video(steady, out)
    assert report.offset_before_frames == 0 and report.confident_before
    assert report.applied_ms == 0 and report.copied_unchanged
    assert out.read_bytes() == steady.read_bytes()


def test_calibrate_cli_brings_a_late_picture_back(tmp_path, preview_frames, speech):
    late = encode(moved_picture(preview_frames, +3), tmp_path / "late.mp4")
    assert measure_av_sync(late).offset_frames == 3
    out = tmp_path / "late.calibrated.mp4"
    done = run_cli("calibrate", str(late), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["offset_before_frames"] == 3 and report["applied_ms"] == 120
    assert abs(report["offset_after_frames"]) <= 1 and not report["copied_unchanged"]
    # Measured again independently, against the sound the file now carries.
    assert abs(measure_av_sync(out).offset_frames) <= 1
    assert video_packets(out) == video_packets(late)  # the picture was not re-encoded
    assert_duration_matches_audio(out, speech)
    assert probe_video(out).metadata.get("comment", "").startswith("AI-generated")


def test_calibrate_brings_an_early_picture_back(tmp_path, preview_frames, speech):
    early = encode(moved_picture(preview_frames, -2), tmp_path / "early.mp4")
    out = tmp_path / "early.calibrated.mp4"
    report = calibrate_video(early, out)
    assert report.offset_before_frames == -2 and report.applied_ms == -80
    assert abs(report.offset_after_frames) <= 1
    assert video_packets(out) == video_packets(early)
    assert_duration_matches_audio(out, speech)


def test_render_applies_a_manual_offset_in_the_generators_own_encode(tmp_path, speech):
    out = tmp_path / "manual.mp4"
    # The preview is in sync, so delaying its sound by 80 ms makes the picture 2 frames early.
    result = render_video(
        create_generator("preview"), PORTRAIT, SPEECH, out, RenderParams(min_resolution=256, av_offset_ms=80)
    )
    assert result.av_offset_applied_ms == 80
    assert measure_av_sync(out).offset_frames == -2
    assert_duration_matches_audio(out, speech)
    assert not list(tmp_path.glob(".*"))  # no hidden first-pass or partial files left behind


def test_postprocess_parameters_are_range_checked():
    for bad in (
        dict(motion_smoothing=-1),
        dict(motion_smoothing=50),
        dict(av_offset_ms=5000),
        dict(av_offset_ms=float("nan")),
    ):
        with pytest.raises(ParameterError):
            RenderParams(**bad).validated()
    assert RenderParams(motion_smoothing=0, av_offset_ms=-120, lipsync_calibration=False).validated()


# --- motion smoothing ----------------------------------------------------------------------------


class ShakenPreview:
    """The preview generator with a camera shake: random small translation + rotation per frame."""

    name, version = "shaken-preview", "test"

    def __init__(self, shift_px: float, angle_deg: float, seed: int = 7):
        self.preview = create_generator("preview")
        self.shift_px, self.angle_deg = shift_px, angle_deg
        self.rng = np.random.default_rng(seed)

    def output_size(self, portrait_rgb, params, *, face_box=None):
        return self.preview.output_size(portrait_rgb, params, face_box=face_box)

    def frames(self, portrait_rgb, audio, params, *, face_box=None) -> Iterator[np.ndarray]:
        for frame in self.preview.frames(portrait_rgb, audio, params, face_box=face_box):
            height, width = frame.shape[:2]
            dx, dy = self.rng.normal(0, self.shift_px, 2)
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), self.rng.normal(0, self.angle_deg), 1.0)
            matrix[:, 2] += (dx, dy)
            yield cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def test_smoothing_halves_head_shake_and_keeps_lip_sync(tmp_path, speech):
    shaken = tmp_path / "shaken.mp4"
    smoothed = tmp_path / "smoothed.mp4"
    render_video(ShakenPreview(1.5, 0.5), PORTRAIT, SPEECH, shaken, RenderParams(**PLAIN))
    result = render_video(ShakenPreview(1.5, 0.5), PORTRAIT, SPEECH, smoothed, RenderParams(min_resolution=256))
    assert result.motion_smoothing > 0 and result.motion_frames_warped > result.frames // 2
    jitter_before, jitter_after = jitter_of(shaken), jitter_of(smoothed)
    assert jitter_after <= 0.5 * jitter_before, (jitter_before, jitter_after)
    sync_before, sync_after = measure_av_sync(shaken), measure_av_sync(smoothed)
    assert sync_after.correlation >= sync_before.correlation - 0.05
    assert abs(sync_after.offset_frames) <= 1
    assert_duration_matches_audio(smoothed, speech)


def test_smoothing_leaves_a_steady_head_steady(tmp_path, preview_frames):
    steady = encode(preview_frames, tmp_path / "steady.mp4")
    smoothed = tmp_path / "smoothed.mp4"
    render_video(create_generator("preview"), PORTRAIT, SPEECH, smoothed, RenderParams(min_resolution=256))
    # Within the tracker's own noise: corrections below its floor are not applied.
    assert jitter_of(smoothed) <= 1.25 * jitter_of(steady)


def test_smoothing_strength_zero_leaves_frames_untouched(preview_frames):
    from sonic_model.postprocess import HeadMotionSmoother

    smoother = HeadMotionSmoother(0.0, track=True)
    out = list(smoother.run(iter(preview_frames[:20])))
    assert all(a is b for a, b in zip(out, preview_frames[:20], strict=False)) and len(out) == 20
    assert len(smoother.mouth_opening) == 20 and smoother.figures.frames_warped == 0


def test_render_one_defaults_still_pass_qa(tmp_path, speech):
    out = tmp_path / "talk.mp4"
    done = render_one(PORTRAIT, SPEECH, out, "--min-resolution", "256", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["av_offset_measured_frames"] == 0 and result["av_offset_applied_ms"] == 0
    assert result["motion_smoothing"] == RenderParams().motion_smoothing
    qa = check_video(out, load_image(PORTRAIT), speech)
    assert qa.passed, qa.failures
    assert_duration_matches_audio(out, speech)


def test_render_path_does_not_import_qa():
    # Calibration measures sync with `sonic_model.sync`; rendering must not pull in the QA package.
    probe = "import sys, sonic_model.render; print(sorted(m for m in sys.modules if m.startswith('sonic_model.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = done.stdout.split("'")
    assert "sonic_model.sync" in loaded and "sonic_model.postprocess.lipsync" in loaded, done.stdout
    assert not [name for name in loaded if name == "sonic_model.qa" or name.startswith("sonic_model.qa.")], done.stdout
