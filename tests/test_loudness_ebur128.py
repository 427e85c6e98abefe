"""The BS.1770 meter (`sonic_model/loudness_meter.py`) against an outside reference: ffmpeg's
`ebur128` filter (libavfilter's own EBU R128 implementation), on speech, a sine, noise and
stereo files.

Both measure the very same samples: each file is first turned by ffmpeg into a 48 kHz float
WAV (ebur128 works at 48 kHz only and would resample anything else itself), which ffmpeg's
filter and our meter then read. ffmpeg prints integrated loudness and true peak to 0.1, so the
figures must agree within `LOUDNESS_TOLERANCE_LU` and `TRUE_PEAK_TOLERANCE_DB`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sonic_model.encode import ffmpeg_executable
from sonic_model.loudness_meter import integrated_loudness, true_peak_dbtp

FIXTURES = Path(__file__).parent / "fixtures"
RATE = 48000
# ffmpeg rounds to 0.1: half of that, plus what two correct implementations may differ by.
LOUDNESS_TOLERANCE_LU = 0.15
# True peak: both oversample 4x, with different interpolation filters (ffmpeg's swresample).
TRUE_PEAK_TOLERANCE_DB = 0.3


def as_48k_float_wav(source: Path, out: Path) -> Path:
    subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(source)]
        + ["-vn", "-ar", str(RATE), "-c:a", "pcm_f32le", str(out)],
        check=True,
    )
    return out


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBTP) as ffmpeg's ebur128 filter prints them."""
    done = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path)]
        + ["-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return integrated, peak


def sine(tmp_path: Path) -> Path:
    t = np.arange(10 * RATE) / RATE
    samples = 0.1 * np.sin(2 * np.pi * 997 * t)  # -20 dBFS peak: about -23 LUFS on one channel
    soundfile.write(tmp_path / "sine.wav", samples.astype(np.float32), RATE, subtype="FLOAT")
    return tmp_path / "sine.wav"


def pink_ish_noise(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    white = rng.standard_normal(8 * RATE)
    samples = 0.05 * np.cumsum(white) / np.sqrt(np.arange(1, len(white) + 1))  # a tilted spectrum
    samples = 0.5 * white * 0.05 + samples - np.convolve(samples, np.ones(64) / 64, mode="same")
    soundfile.write(tmp_path / "noise.wav", samples.astype(np.float32), RATE, subtype="FLOAT")
    return tmp_path / "noise.wav"


def stereo_different_channels(tmp_path: Path) -> Path:
    """Speech on the left, a quieter 200 Hz tone with pauses on the right (channels not alike)."""
    speech = soundfile.read(FIXTURES / "speech_en_16k.wav", dtype="float32")[0]
    speech = np.interp(np.arange(len(speech) * 3) / 3, np.arange(len(speech)), speech)  # 16 -> 48 kHz, roughly
    t = np.arange(len(speech)) / RATE
    tone = 0.05 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    soundfile.write(tmp_path / "stereo.wav", np.stack([speech, tone], axis=1).astype(np.float32), RATE, "FLOAT")
    return tmp_path / "stereo.wav"


SOURCES = {
    "speech_en_16k.wav": lambda tmp: FIXTURES / "speech_en_16k.wav",
    "speech_en_pause_16k.wav": lambda tmp: FIXTURES / "speech_en_pause_16k.wav",
    "speech_zh_16k.flac": lambda tmp: FIXTURES / "speech_zh_16k.flac",
    "speech_es_44k.mp3": lambda tmp: FIXTURES / "speech_es_44k.mp3",
    "speech_de_48k_stereo.wav": lambda tmp: FIXTURES / "speech_de_48k_stereo.wav",
    "sine_997hz_-20dbfs": sine,
    "noise": pink_ish_noise,
    "stereo_speech_and_tone": stereo_different_channels,
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_integrated_loudness_and_true_peak_agree_with_ffmpeg_ebur128(name, tmp_path):
    wav = as_48k_float_wav(SOURCES[name](tmp_path), tmp_path / "measured.wav")
    samples, rate = soundfile.read(wav, dtype="float64", always_2d=True)
    assert rate == RATE
    reference_lufs, reference_peak = ffmpeg_ebur128(wav)
    ours_lufs = integrated_loudness(samples, rate)
    ours_peak = true_peak_dbtp(samples)
    assert abs(ours_lufs - reference_lufs) <= LOUDNESS_TOLERANCE_LU, (name, ours_lufs, reference_lufs)
    assert abs(ours_peak - reference_peak) <= TRUE_PEAK_TOLERANCE_DB, (name, ours_peak, reference_peak)


def test_the_sine_is_where_the_standard_puts_it(tmp_path):
    # BS.1770: a 997 Hz sine at -20 dBFS peak on one channel reads -20 - 3.01 = -23.0 LUFS (give or
    # take the K filter's gain at 997 Hz, under 0.1 dB).
    samples, rate = soundfile.read(sine(tmp_path), dtype="float64", always_2d=True)
    assert integrated_loudness(samples, rate) == pytest.approx(-23.0, abs=0.1)
