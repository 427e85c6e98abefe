"""QA checks on real media: fixture portraits and espeak speech, encoded by the real encoder.

The talking videos are synthesised here rather than rendered by a generator, so each defect
(a 3-frame shift, a frozen stretch, black frames, flashes, another person, silence) is exactly
known: the portrait's lower lip and jaw are warped down and the gap painted dark, by an amount
that follows the speech envelope, which the face mesh reads as a mouth opening.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from sonic_model.audio import AudioClip, frame_envelope, load_audio
from sonic_model.encode import FPS, VideoWriter, frame_count
from sonic_model.errors import InputError
from sonic_model.face import face_landmarks, interocular_distance
from sonic_model.image import load_image
from sonic_model.qa import QAResult, QAThresholds, check_video, integrated_loudness, plot_sync
from sonic_model.sync import estimate_av_offset, measure_av_sync

FIXTURES = Path(__file__).parent / "fixtures"
# 6 s of English with a 1.5 s pause in the middle (speech 0.03-1.76 s and 3.27-5.73 s).
SPEECH = FIXTURES / "speech_en_pause_16k.wav"


class MouthAnimator:
    """Opens a portrait's mouth by `amount` in [0, 1]: the lower lip and jaw are pulled down."""

    def __init__(self, portrait: np.ndarray):
        self.portrait = portrait
        landmarks = face_landmarks(portrait)
        self.mouth_x = float((landmarks[61, 0] + landmarks[291, 0]) / 2)
        self.mouth_y = float((landmarks[13, 1] + landmarks[14, 1]) / 2)
        self.half_width = float(abs(landmarks[291, 0] - landmarks[61, 0]) / 2)
        self.max_open_px = 0.25 * interocular_distance(landmarks)
        chin_y = float(landmarks[152, 1])
        height, width = portrait.shape[:2]
        self.ys, self.xs = (grid.astype(np.float32) for grid in np.mgrid[0:height, 0:width])
        # Full pull between the mouth corners, fading out sideways and towards below the chin.
        across = np.clip(1.0 - (np.abs(self.xs - self.mouth_x) - self.half_width) / (0.6 * self.half_width), 0, 1)
        span = chin_y - self.mouth_y
        down = np.clip(1.0 - (self.ys - self.mouth_y - 0.5 * span) / span, 0, 1)
        self.pull = np.where(self.ys < self.mouth_y, 0.0, across * down).astype(np.float32)

    def frame(self, amount: float) -> np.ndarray:
        gap = float(np.clip(amount, 0.0, 1.0)) * self.max_open_px
        if gap < 0.25:
            return self.portrait.copy()
        out = cv2.remap(
            self.portrait, self.xs, self.ys - gap * self.pull, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        centre = (int(round(self.mouth_x)), int(round(self.mouth_y + gap / 2)))
        axes = (int(self.half_width * 0.8), max(1, int(round(gap / 2))))
        cv2.ellipse(out, centre, axes, 0, 0, 360, (60, 15, 20), -1, cv2.LINE_AA)
        return out


def mouth_amounts(audio: AudioClip, *, picture_delay_frames: int = 0) -> np.ndarray:
    """Per-frame mouth opening following the envelope; a delay shows each opening that many frames late."""
    envelope = frame_envelope(audio, FPS)
    loud = float(np.percentile(envelope, 95))
    amounts = np.clip(envelope / loud, 0, 1) if loud > 0 else np.zeros_like(envelope)
    amounts[amounts < 0.08] = 0.0  # breath noise in pauses: keep the mouth shut
    if picture_delay_frames > 0:
        amounts = np.concatenate([np.zeros(picture_delay_frames), amounts[:-picture_delay_frames]])
    elif picture_delay_frames < 0:
        amounts = np.concatenate([amounts[-picture_delay_frames:], np.zeros(-picture_delay_frames)])
    return amounts


def write_talking_video(
    out_path: Path,
    portrait: np.ndarray,
    audio_path: Path,
    *,
    picture_delay_frames: int = 0,
    edit: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Encode a synthetic talking head for `audio_path` with the project's VideoWriter."""
    audio = load_audio(audio_path)
    animator = MouthAnimator(portrait)
    amounts = mouth_amounts(audio, picture_delay_frames=picture_delay_frames)
    num_frames = frame_count(audio.duration_s)
    height, width = portrait.shape[:2]
    with VideoWriter(
        out_path, width=width, height=height, num_frames=num_frames, audio_path=audio_path, generator="qa-test"
    ) as writer:
        for index, frame in enumerate(_frames(animator, amounts, num_frames)):
            writer.write(edit(index, frame) if edit else frame)
    return out_path


def _frames(animator: MouthAnimator, amounts: np.ndarray, num_frames: int) -> Iterator[np.ndarray]:
    for index in range(num_frames):
        yield animator.frame(amounts[min(index, len(amounts) - 1)])


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image(FIXTURES / "portrait_astronaut.jpg")


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return load_image(FIXTURES / "portrait_hopper.jpg")


@pytest.fixture(scope="module")
def speech() -> AudioClip:
    return load_audio(SPEECH)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qa_media")


@pytest.fixture(scope="module")
def good_video(media_dir, hopper) -> Path:
    return write_talking_video(media_dir / "good.mp4", hopper, SPEECH)


@pytest.fixture(scope="module")
def good_result(good_video, hopper, speech) -> QAResult:
    return check_video(good_video, hopper, speech)


# --- thresholds -------------------------------------------------------------------------------


def test_threshold_overrides_convert_and_reject_unknown_names():
    changed = QAThresholds().with_overrides({"min_sync_correlation": "0.2", "max_black_frames": 3.0})
    assert changed.min_sync_correlation == 0.2 and changed.max_black_frames == 3
    assert QAThresholds().with_overrides(None) == QAThresholds()
    with pytest.raises(InputError, match="unknown QA threshold.*max_jitter"):
        QAThresholds().with_overrides({"max_jitter": 1})
    with pytest.raises(InputError, match="max_black_frames must be a whole number"):
        QAThresholds().with_overrides({"max_black_frames": 1.5})


# --- the good video ---------------------------------------------------------------------------


def test_good_video_passes_every_check(good_result):
    assert good_result.passed, good_result.failures
    figures = good_result.figures
    assert figures["video_codec"] == "h264" and figures["pix_fmt"] == "yuv420p" and figures["fps"] == 25
    assert figures["duration_mismatch_frames"] <= 1
    assert figures["av_offset_frames"] == 0
    assert figures["sync_correlation"] > 0.6
    assert figures["face_present_ratio"] == 1.0
    assert figures["identity_distance"] < 0.4
    assert figures["black_frames"] == 0
    assert -35 < figures["loudness_lufs"] < -8
    json.dumps(good_result.figures, allow_nan=False)  # the sidecar's strict JSON
    assert len(good_result.mouth_series) == len(good_result.envelope_series) == figures["num_frames"]


def test_plot_sync_writes_a_png(good_result, tmp_path):
    png = plot_sync(good_result, tmp_path / "report" / "sync.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(png)).shape[1] == 800


# --- sync --------------------------------------------------------------------------------------


def test_picture_three_frames_late_measures_plus_three_and_fails(media_dir, hopper, speech):
    late = write_talking_video(media_dir / "late3.mp4", hopper, SPEECH, picture_delay_frames=3)
    sync = measure_av_sync(late, speech)
    assert sync.offset_frames == 3 and sync.confident, (sync.offset_frames, sync.correlation)
    assert sync.offset_ms == 120
    result = check_video(late, hopper, speech)
    assert not result.passed
    assert any("picture is 3 frames (120 ms) late" in f and "max ±2" in f for f in result.failures), result.failures


def test_sync_sign_on_series_early_picture_is_negative():
    rng = np.random.default_rng(0)
    envelope = np.convolve(rng.random(200), np.ones(3) / 3, mode="same")
    mask = np.ones(200, bool)
    early = np.concatenate([envelope[2:], [np.nan, np.nan]])  # mouth[t] shows audio[t + 2]
    assert estimate_av_offset(early, envelope, mask).offset_frames == -2
    late = np.concatenate([[np.nan] * 4, envelope[:-4]])
    measured = estimate_av_offset(late, envelope, mask)
    assert measured.offset_frames == 4 and measured.correlation > 0.99 and measured.confident


def test_sync_measured_against_the_videos_own_track_by_default(good_video):
    sync = measure_av_sync(good_video, frame_step=2)
    assert abs(sync.offset_frames) <= 1 and sync.confident


# --- picture defects -----------------------------------------------------------------------------


_FROZEN_FRAME: dict = {}  # the frame _freeze_during_speech holds (one video at a time)


def _freeze_during_speech(index: int, frame: np.ndarray) -> np.ndarray:
    # Frames 90-115 (3.6-4.6 s, inside the second sentence) repeat frame 90.
    if index == 90:
        _FROZEN_FRAME["frame"] = frame
    return _FROZEN_FRAME["frame"] if 90 <= index <= 115 else frame


def test_frozen_video_fails_as_frozen(media_dir, hopper, speech):
    video = write_talking_video(media_dir / "frozen.mp4", hopper, SPEECH, edit=_freeze_during_speech)
    result = check_video(video, hopper, speech, QAThresholds(identity_samples=1))
    assert any(
        f.startswith("frozen picture during speech: 26 identical frames from frame 90") for f in result.failures
    ), result.failures
    assert not any("flicker" in f or "black" in f for f in result.failures)


def test_black_frames_fail_as_black(media_dir, hopper, speech):
    def blacken(index: int, frame: np.ndarray) -> np.ndarray:
        return np.zeros_like(frame) if 40 <= index < 43 else frame

    video = write_talking_video(media_dir / "black.mp4", hopper, SPEECH, edit=blacken)
    result = check_video(video, hopper, speech, QAThresholds(identity_samples=1))
    assert any(f.startswith("3 black frame(s)") and "first at frame 40" in f for f in result.failures), result.failures
    # A cut to black also changes the mean luminance abruptly: that is reported too, and the
    # black frames have no face.
    assert result.figures["black_frames"] == 3


def test_flashing_video_fails_as_flicker_only(media_dir, hopper, speech):
    def flash(index: int, frame: np.ndarray) -> np.ndarray:
        return cv2.add(frame, np.full_like(frame, 30)) if index % 10 == 5 else frame

    video = write_talking_video(media_dir / "flicker.mp4", hopper, SPEECH, edit=flash)
    result = check_video(video, hopper, speech, QAThresholds(identity_samples=1))
    flicker = [f for f in result.failures if f.startswith("flicker")]
    assert flicker and "(max 8)" in flicker[0], result.failures
    assert result.figures["max_luma_jump"] > 20
    assert not any("black" in f or "frozen" in f for f in result.failures)


# --- identity and audio ---------------------------------------------------------------------------


def test_other_persons_portrait_fails_identity(good_video, astronaut, speech):
    result = check_video(good_video, astronaut, speech, QAThresholds(identity_samples=1))
    assert result.figures["identity_distance"] > 0.6
    assert any(f.startswith("face is not the portrait's person") for f in result.failures), result.failures


def test_silent_audio_fails_loudness(media_dir, hopper, speech):
    silent_wav = media_dir / "silence.wav"
    soundfile.write(silent_wav, np.zeros(len(speech.samples), np.float32), speech.sample_rate)
    video = write_talking_video(media_dir / "silent.mp4", hopper, silent_wav)
    result = check_video(video, hopper, load_audio(silent_wav), QAThresholds(identity_samples=1))
    assert any(f.startswith("audio is silent: loudness -120.0 LUFS below the minimum -35") for f in result.failures), (
        result.failures
    )
    assert not result.passed


def test_loudness_of_a_full_scale_1khz_sine_is_near_minus_3_lufs():
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS (K-weighting ~ +0.7 dB at 1 kHz).
    rate = 48_000
    sine = np.sin(2 * np.pi * 997 * np.arange(rate * 2) / rate)
    assert integrated_loudness(sine[:, None], rate) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(np.zeros((rate, 1)), rate) == float("-inf")


def test_shaking_head_fails_jitter_and_steady_one_does_not(media_dir, hopper, speech, good_result):
    shifts = np.random.default_rng(1).normal(0.0, 2.0, (400, 2))

    def shake(index: int, frame: np.ndarray) -> np.ndarray:
        move = np.float32([[1, 0, shifts[index, 0]], [0, 1, shifts[index, 1]]])
        return cv2.warpAffine(frame, move, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REFLECT)

    video = write_talking_video(media_dir / "shake.mp4", hopper, SPEECH, edit=shake)
    result = check_video(video, hopper, speech, {"identity_samples": 1})  # overrides as a dict
    assert any(f.startswith("head jitters") and "(max 0.025)" in f for f in result.failures), result.failures
    assert result.figures["head_jitter"] > 2 * good_result.figures["head_jitter"]
    assert good_result.figures["head_jitter"] < 0.025


def test_qa_check_takes_a_portrait_path_and_threshold_overrides(good_video):
    from tasks.qa import check_video_file

    result = check_video_file(good_video, FIXTURES / "portrait_hopper.jpg", SPEECH, {"min_sync_correlation": 0.99})
    assert isinstance(result, QAResult) and not result.passed
    assert any("sync correlation" in f and "below the minimum 0.99" in f for f in result.failures), result.failures
    with pytest.raises(InputError, match="unknown QA threshold"):
        check_video_file(good_video, FIXTURES / "portrait_hopper.jpg", SPEECH, {"nope": 1})


def test_a_file_that_is_not_a_video_fails_without_raising(tmp_path, hopper, speech):
    not_video = tmp_path / "talk.mp4"
    not_video.write_text("not a video")
    result = check_video(not_video, hopper, speech)
    assert not result.passed and result.failures[0].startswith("video cannot be read")
    with pytest.raises(InputError, match="video cannot be read"):
        measure_av_sync(not_video, speech)


def test_preview_generator_render_passes_qa(tmp_path, hopper, speech):
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    video = tmp_path / "preview.mp4"
    render_video(create_generator("preview"), hopper, SPEECH, video, RenderParams(), audio=speech)
    result = check_video(video, hopper, speech)
    assert result.passed, result.failures
    assert abs(result.figures["av_offset_frames"]) <= 1 and result.figures["sync_correlation"] > 0.5


def test_mouth_left_open_in_the_pause_fails_closed_mouth(media_dir, hopper, speech):
    animator = MouthAnimator(hopper)

    def gape_in_pause(index: int, frame: np.ndarray) -> np.ndarray:
        # The pause runs 1.76-3.27 s (frames 44-81): hold the mouth wide open through it.
        return animator.frame(1.0) if 46 <= index <= 79 else frame

    video = write_talking_video(media_dir / "gape.mp4", hopper, SPEECH, edit=gape_in_pause)
    result = check_video(video, hopper, speech, QAThresholds(identity_samples=1))
    assert any(f.startswith("mouth stays open in the pause") and "(max 0.06)" in f for f in result.failures), (
        result.failures
    )
