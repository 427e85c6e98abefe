"""Loudness normalisation (sonic_model.loudness) and named presets (sonic_model.presets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from sonic_model.errors import ParameterError
from sonic_model.loudness import (
    OUTPUT_SAMPLE_RATE,
    TRUE_PEAK_CEILING_DBTP,
    normalise_loudness,
    normalised_samples,
    parse_loudness_target,
)
from sonic_model.loudness_meter import integrated_loudness, true_peak_dbtp
from sonic_model.presets import PRESETS, apply_preset, parse_preset

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("fixture", "target"),
    [
        ("speech_en_16k.wav", -14.0),
        ("speech_de_48k_stereo.wav", -14.0),
        ("speech_fr_48k.m4a", -23.0),
        ("speech_es_44k.mp3", -16.0),
    ],
)
def test_normalised_to_the_target_with_the_true_peak_under_the_ceiling(tmp_path, fixture, target):
    out = tmp_path / "normalised.wav"
    report = normalise_loudness(FIXTURES / fixture, out, target)
    samples, rate = soundfile.read(out, always_2d=True, dtype="float32")
    assert rate == OUTPUT_SAMPLE_RATE and samples.shape[1] == 2
    # Measured independently of the report: loudness at the target, no true peak over -1 dBTP.
    assert integrated_loudness(samples, rate) == pytest.approx(target, abs=0.2)
    assert true_peak_dbtp(samples) <= TRUE_PEAK_CEILING_DBTP
    assert np.abs(samples).max() < 1.0
    assert report.output_lufs == pytest.approx(target, abs=0.2)
    assert report.input_lufs < -19  # these scripts were recorded quietly: the gain did something
    # The sound is not moved or cut: it lasts as long as the script (m4a: ffmpeg trims the 1024
    # AAC priming samples that PyAV keeps, 21 ms; less than a frame).
    from sonic_model.audio import load_audio

    assert len(samples) / rate == pytest.approx(load_audio(FIXTURES / fixture).duration_s, abs=0.025)


def test_a_loud_peaky_signal_is_limited_not_clipped():
    rate = OUTPUT_SAMPLE_RATE
    t = np.arange(int(2.0 * rate)) / rate
    quiet = 0.02 * np.sin(2 * np.pi * 220 * t)
    clicks = np.zeros_like(t)
    clicks[:: rate // 4] = 0.9  # sharp peaks far above the speech-like level
    signal = np.stack([quiet + clicks, quiet + clicks], axis=1).astype(np.float32)
    output, report = normalised_samples(signal, rate, -14.0)
    assert report.limited_db > 3  # the limiter had to act
    assert true_peak_dbtp(output) <= TRUE_PEAK_CEILING_DBTP
    assert integrated_loudness(output, rate) == pytest.approx(-14.0, abs=0.2)


def test_loudness_target_parsing():
    assert parse_loudness_target("-14") == -14.0
    assert parse_loudness_target("-16 LUFS") == -16.0
    assert parse_loudness_target(-23) == -23.0
    for off in ("off", "OFF", "", None, float("nan")):
        assert parse_loudness_target(off) is None
    with pytest.raises(ParameterError, match="out of range"):
        parse_loudness_target(3)
    with pytest.raises(ParameterError, match="not a number of LUFS"):
        parse_loudness_target("loud")


def test_silent_audio_cannot_be_normalised(tmp_path):
    from sonic_model.errors import AudioError

    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        normalise_loudness(silent, tmp_path / "out.wav", -14)


def test_presets_fill_in_what_was_not_set_and_explicit_values_win():
    fast = apply_preset("fast")
    assert fast["preset"] == "fast" and fast["inference_steps"] == PRESETS["fast"]["inference_steps"]
    assert fast["renditions"] == ("master",)
    hq = apply_preset("High_Quality", {"inference_steps": 30, "seed": None})
    assert hq["inference_steps"] == 30  # explicit wins
    assert hq["min_resolution"] == PRESETS["high-quality"]["min_resolution"]
    assert "seed" not in hq  # None means "not set"
    assert set(hq["renditions"]) == {"master", "vertical", "square", "landscape"}
    assert apply_preset(None, {"seed": 3}) == {"seed": 3, "preset": None}
    assert PRESETS["fast"]["inference_steps"] < PRESETS["high-quality"]["inference_steps"]
    assert PRESETS["fast"]["min_resolution"] < PRESETS["high-quality"]["min_resolution"]


def test_preset_names():
    assert parse_preset("hq") == "high-quality"
    assert parse_preset(" FAST ") == "fast"
    assert parse_preset("") is None and parse_preset(None) is None
    with pytest.raises(ParameterError, match="unknown preset 'turbo'; choose fast or high-quality"):
        parse_preset("turbo")
