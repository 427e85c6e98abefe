"""The sync estimate's confidence (issue 23), on real preview renders of the espeak-ng fixtures.

A short greeting publishes with "sync unmeasured" (never failed, never shifted); a spurious peak
is not confident; a known offset is recovered and calibration shifts by it; a correct render is
left unshifted by calibration, with the figures it decided on kept.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sonic_model.audio import AudioClip, frame_envelope, load_audio, speech_segments
from sonic_model.encode import FPS
from sonic_model.face import LandmarkTracker, mouth_opening
from sonic_model.generators import RenderParams
from sonic_model.image import load_image
from sonic_model.postprocess.lipsync import calibration_shift
from sonic_model.preview.generator import PreviewGenerator
from sonic_model.qa import QAThresholds, check_video
from sonic_model.qa.checks import measure_sync, sync_failures
from sonic_model.render import render_video
from sonic_model.sync import at_reference_level, speech_mask_for_frames

FIXTURES = Path(__file__).parent / "fixtures"
# 6 s of English with a 1.5 s pause (about 4.2 s of speech).
SPEECH = FIXTURES / "speech_en_pause_16k.wav"
OTHER_SPEECH = FIXTURES / "speech_de_48k_stereo.wav"
QUICK = dict(min_resolution=256, motion_smoothing=0.0, loudness_target=None)


def sound(clip: AudioClip) -> tuple[np.ndarray, np.ndarray]:
    """QA's envelope and speech mask of a sound (at the reference level)."""
    level = at_reference_level(clip)
    envelope = frame_envelope(level, FPS)
    return envelope.astype(np.float64), speech_mask_for_frames(speech_segments(level), len(envelope), FPS)


def delayed(series: np.ndarray, frames: int, fill) -> np.ndarray:
    """The series played `frames` later (the sound delayed: the picture is that many frames early)."""
    out = np.full_like(series, fill)
    out[frames:] = series[:-frames]
    return out


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return load_image(FIXTURES / "portrait_hopper.jpg")


@pytest.fixture(scope="module")
def preview_mouth(hopper) -> tuple[np.ndarray, AudioClip]:
    """A preview render of the 6 s fixture, its mouth tracked on every frame as QA tracks it."""
    audio = load_audio(SPEECH)
    tracker = LandmarkTracker()
    mouth = []
    for frame in PreviewGenerator().frames(hopper, audio, RenderParams(**QUICK)):
        landmarks = tracker(frame)
        mouth.append(np.nan if landmarks is None else mouth_opening(landmarks))
    return np.asarray(mouth), audio


def test_a_short_greeting_publishes_with_sync_unmeasured(tmp_path, hopper):
    # 1.2 s of speech: the old rule ("need 25 speech frames") failed such rows.
    samples, rate = soundfile.read(FIXTURES / "speech_en_16k.wav", dtype="float32")
    greeting = tmp_path / "greeting.wav"
    soundfile.write(greeting, samples[: int(1.2 * rate)], rate)
    out = tmp_path / "greeting.mp4"
    render = render_video(PreviewGenerator(), hopper, greeting, out, RenderParams(**QUICK))
    result = check_video(out, hopper, load_audio(greeting))
    assert result.passed, result.failures
    assert result.figures["sync_status"] == "unmeasured"
    assert "too little speech" in result.figures["sync_unmeasured_reason"]
    assert result.figures["sync_speech_s"] < QAThresholds().min_sync_speech_s
    # Never a shift on an unsure estimate; the sidecar keeps why.
    assert render.av_offset_applied_ms == 0
    assert render.av_calibration["status"] == "unmeasured"
    assert render.av_calibration["shift"]["significant"] is False


def test_the_report_notes_sync_unmeasured_on_a_published_row():
    from tasks.records import PUBLISHED, RowInfo, RowOutcome
    from tasks.report import sync_note

    figures = {"sync_status": "unmeasured", "sync_unmeasured_reason": "too little speech to measure: 1.1 s"}
    assert sync_note(RowOutcome(RowInfo("hola"), PUBLISHED, qa_figures=figures)) == (
        "sync unmeasured: too little speech to measure: 1.1 s"
    )
    assert sync_note(RowOutcome(RowInfo("long"), PUBLISHED, qa_figures={"sync_status": "measured"})) == ""


def test_a_spurious_peak_is_not_confident(preview_mouth):
    mouth, audio = preview_mouth
    envelope, mask = sound(audio)
    thresholds = QAThresholds()
    # The case: a short clip whose curve peaks far out (+7) by chance. Here the render's
    # own mouth against its sound 7 frames early, on the first 1.8 s: a peak, but too little speech.
    short = slice(0, int(1.8 * FPS))
    early = delayed(envelope, 7, 0.0)[short], delayed(mask, 7, False)[short]
    sync = measure_sync(mouth[short], *early, thresholds)
    assert not sync.confident and "too little speech" in sync.unmeasured_reason
    assert sync_failures(sync, thresholds) == []
    assert not calibration_shift(sync).significant
    # Another recording's sound against this mouth over all of its speech: the curve's highest
    # point is by chance; it is either unsure or, if it stands out, far off and failed; never shifted.
    other = load_audio(OTHER_SPEECH)
    other_envelope, other_mask = sound(AudioClip(other.samples[: len(audio.samples)]))
    n = min(len(mouth), len(other_envelope))
    unrelated = measure_sync(mouth[:n], other_envelope[:n], other_mask[:n], thresholds)
    assert math.isfinite(unrelated.correlation)
    assert not unrelated.confident or sync_failures(unrelated, thresholds), unrelated.figures()
    assert not calibration_shift(unrelated).significant


@pytest.mark.parametrize("picture_early", [4, 8])
def test_a_known_offset_is_recovered_and_calibrated(preview_mouth, picture_early):
    mouth, audio = preview_mouth
    envelope, mask = sound(audio)
    thresholds = QAThresholds()
    sync = measure_sync(mouth, delayed(envelope, picture_early, 0.0), delayed(mask, picture_early, False), thresholds)
    assert sync.confident, sync.figures()
    assert abs(sync.offset_frames - (-picture_early)) <= 1, sync.figures()
    assert any("early against the audio" in f for f in sync_failures(sync, thresholds))
    shift = calibration_shift(sync)
    assert shift.significant and shift.offset_frames == sync.offset_frames
    assert shift.gain > shift.z * shift.standard_error


def test_a_correct_render_is_measured_and_not_shifted(preview_mouth):
    mouth, audio = preview_mouth
    envelope, mask = sound(audio)
    sync = measure_sync(mouth, envelope, mask, QAThresholds())
    assert sync.confident and abs(sync.offset_frames) <= 1, sync.figures()
    assert sync_failures(sync, QAThresholds()) == []
    assert not calibration_shift(sync).significant


def test_calibration_leaves_a_zero_offset_render_unshifted(tmp_path, hopper):
    out = tmp_path / "talk.mp4"
    render = render_video(PreviewGenerator(), hopper, SPEECH, out, RenderParams(**{**QUICK, "motion_smoothing": 2.0}))
    assert render.av_offset_applied_ms == 0
    decision = render.av_calibration
    assert decision["status"] == "measured" and abs(decision["offset_frames"]) <= 1, decision
    assert decision["shift"]["significant"] is False
    result = check_video(out, hopper, load_audio(SPEECH))
    assert result.passed, result.failures
    assert result.figures["sync_status"] == "measured"
