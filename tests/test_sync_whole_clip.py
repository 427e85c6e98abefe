"""Another row's audio and a 2.5-frame offset (issue 23), on real preview renders of the fixtures.

The speech-only lag curve missed 22% of swapped sounds in the sync study: over a few seconds of
speech two unrelated talking series correlate by chance nearly as much as a weak true pair. QA
now also asks whether the mouth rests in this sound's pauses and moves in its speech (the
whole-clip correlation, `sonic_model.sync.whole_clip_correlation`), and reads the peak's lag to a
fraction of a frame (a picture 2.5 frames late rounded to 2 and passed a 2-frame tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sync_renders import sound, tracked_mouth

from sonic_model.audio import AudioClip, load_audio
from sonic_model.encode import FPS
from sonic_model.qa import QAThresholds
from sonic_model.qa.checks import measure_sync, sync_failures
from sonic_model.sync import SyncMeasurement

FIXTURES = Path(__file__).parent / "fixtures"
# 6 s of English with a 1.5 s pause (about 4.1 s of speech)
SPEECH = FIXTURES / "speech_en_pause_16k.wav"
# another English recording: the sound a swapped row would bring
OTHER_SPEECH = FIXTURES / "speech_en_16k.wav"
# QA as it was before the whole-clip rule (the speech-only rules alone)
SPEECH_ONLY = QAThresholds().with_overrides(
    {"min_sync_whole_clip_correlation": -1.0, "sync_whole_clip_clear_correlation": -1.0}
)


@pytest.fixture(scope="module")
def hopper_mouth() -> tuple[np.ndarray, AudioClip]:
    """Hopper saying the 6 s fixture (preview), the mouth tracked on every frame as QA tracks it."""
    audio = load_audio(SPEECH)
    return tracked_mouth(FIXTURES / "portrait_hopper.jpg", audio), audio


def test_the_render_with_its_own_sound_passes(hopper_mouth):
    mouth, audio = hopper_mouth
    sync = measure_sync(mouth, *sound(audio), QAThresholds())
    whole = sync.whole_clip_correlation_within(QAThresholds().max_abs_av_offset_frames)
    assert whole >= QAThresholds().min_sync_whole_clip_correlation + 0.2, sync.figures()
    assert sync_failures(sync, QAThresholds()) == []


def test_another_rows_sound_fails_where_the_speech_only_rules_passed_it(hopper_mouth):
    mouth, audio = hopper_mouth
    other = load_audio(OTHER_SPEECH)
    envelope, mask = sound(AudioClip(other.samples[: len(audio.samples)], other.sample_rate))
    n = min(len(mouth), len(envelope))
    sync = measure_sync(mouth[:n], envelope[:n], mask[:n], QAThresholds())
    assert sync.speech_s >= QAThresholds().min_sync_speech_s
    assert sync_failures(sync, SPEECH_ONLY) == [], "the speech-only rules catch this one: pick a harder case"
    failures = sync_failures(sync, QAThresholds())
    assert len(failures) == 1 and "speech and pauses" in failures[0] and "own audio" in failures[0], failures


def test_a_short_clip_is_never_failed_by_the_whole_clip_rule(hopper_mouth):
    mouth, audio = hopper_mouth
    other = load_audio(OTHER_SPEECH)
    envelope, mask = sound(AudioClip(other.samples[: len(audio.samples)], other.sample_rate))
    short = slice(0, int(1.5 * FPS))
    sync = measure_sync(mouth[short], envelope[short], mask[short], QAThresholds())
    assert sync.speech_s < QAThresholds().min_sync_speech_s
    assert sync_failures(sync, QAThresholds()) == []


def _curve(peak: int, before: float, at: float, after: float) -> SyncMeasurement:
    """A confident measurement whose lag curve is flat but for three points around `peak`."""
    curve = {lag: 0.0 for lag in range(-15, 16)}
    curve.update({peak - 1: before, peak: at, peak + 1: after})
    return SyncMeasurement(
        peak,
        at,
        True,
        np.zeros(1),
        np.zeros(1),
        np.ones(1, bool),
        correlation_by_lag=curve,
        speech_s=5.0,
        noise=0.05,
        confidence=10.0,
        peak_margin=5.0,
        mouth_motion=0.05,
        whole_clip_correlation_by_lag={lag: 0.7 for lag in range(-15, 16)},
    )


def test_an_offset_is_read_to_a_fraction_of_a_frame():
    # a parabola through (1, 0.5), (2, 0.6), (3, 0.58) peaks a third of a frame past 2
    past = _curve(2, 0.5, 0.6, 0.58)
    assert past.offset_subframe == pytest.approx(2 + 1 / 3, abs=1e-6)
    failures = sync_failures(past, QAThresholds())
    assert len(failures) == 1 and "2.3 frames (93 ms) late" in failures[0], failures
    # the same integer peak leaning the other way stays in tolerance
    assert _curve(2, 0.58, 0.6, 0.5).offset_subframe == pytest.approx(2 - 1 / 3, abs=1e-6)
    assert sync_failures(_curve(2, 0.58, 0.6, 0.5), QAThresholds()) == []
    # a peak with a missing neighbour is read as it is
    edge = _curve(15, 0.5, 0.6, float("nan"))
    edge.correlation_by_lag.pop(16, None)
    assert edge.offset_subframe == 15.0
