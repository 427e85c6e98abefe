"""The whole-array loudness normaliser as it was before it was streamed (issue 13), kept as a reference.

`sonic_model.loudness` now measures and applies a block at a time; tests/test_loudness_streaming.py
checks that it still gives what this version gave, and benchmarks/loudness_speed.py compares the
two. The code is the old module's (it held the script at 48 kHz stereo and its per-sample true-peak
envelope and limiter gains as whole arrays), with the library's constants and filter design, so
only the streaming differs.
"""

from __future__ import annotations

import math

import numpy as np

from sonic_model.errors import AudioError
from sonic_model.loudness import (
    CODEC_HEADROOM_DB,
    LIMITER_RELEASE_S,
    TARGET_TOLERANCE_LU,
    TRUE_PEAK_CEILING_DBTP,
    LoudnessReport,
)
from sonic_model.loudness_meter import TRUE_PEAK_OVERSAMPLING, gated_loudness, k_weighting


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS) of [samples, channels]; -inf for silence.

    K-weighting is the standard's two biquads (high shelf +4 dB at 1.5 kHz, high pass at
    38 Hz), designed for any sample rate the way pyloudnorm does; gating: 400 ms blocks with
    75 % overlap, absolute gate -70 LUFS, relative gate -10 LU. Channel weights are 1 (mono and
    stereo front channels). Filtered a chunk at a time: memory is one float per sample.
    """
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    block, hop = int(0.4 * rate), int(0.1 * rate)
    if len(samples) < block:
        return float("-inf")
    power = np.empty(len(samples) + 1)
    power[0] = 0.0
    power[1:] = _k_weighted_power(samples, rate)
    np.cumsum(power, out=power)
    starts = np.arange(0, len(samples) - block + 1, hop)
    block_power = (power[starts + block] - power[starts]) / block
    return gated_loudness(block_power)  # the gating is not what streaming changed


# Long signals are filtered / oversampled this many samples at a time.
CHUNK_SAMPLES = 1 << 18


def _k_weighted_power(samples: np.ndarray, rate: int) -> np.ndarray:
    """Per sample, the sum over channels of the K-weighted signal squared (float64, 1-D)."""
    from scipy.signal import lfilter

    filters = k_weighting(rate)
    states = [np.zeros((max(len(a), len(b)) - 1, samples.shape[1])) for b, a in filters]
    power = np.empty(len(samples))
    for start in range(0, len(samples), CHUNK_SAMPLES):
        chunk = samples[start : start + CHUNK_SAMPLES].astype(np.float64)
        for index, (b, a) in enumerate(filters):
            chunk, states[index] = lfilter(b, a, chunk, axis=0, zi=states[index])
        power[start : start + len(chunk)] = (chunk * chunk).sum(axis=1)
    return power


def true_peak_envelope(samples: np.ndarray) -> np.ndarray:
    """Per sample, the largest |value| of the 4x oversampled signal around it (all channels), float32.

    Oversampled a chunk at a time (with enough context on each side for the interpolation
    filter), so memory stays a few chunks whatever the length.
    """
    from scipy.signal import resample_poly

    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    factor, context = TRUE_PEAK_OVERSAMPLING, 64
    envelope = np.empty(len(samples), np.float32)
    for start in range(0, len(samples), CHUNK_SAMPLES):
        end = min(len(samples), start + CHUNK_SAMPLES)
        lo, hi = max(0, start - context), min(len(samples), end + context)
        upsampled = np.abs(resample_poly(samples[lo:hi].astype(np.float64), factor, 1, axis=0)).max(axis=1)
        middle = upsampled[(start - lo) * factor : (end - lo) * factor].reshape(end - start, factor).max(axis=1)
        envelope[start:end] = np.maximum(middle, np.abs(samples[start:end]).max(axis=1))
    return envelope


def true_peak_dbtp(samples: np.ndarray) -> float:
    """True peak (dBTP) of [samples, channels]: 4x oversampled, BS.1770-4 annex 2."""
    if len(samples) == 0:
        return float("-inf")
    peak = float(true_peak_envelope(samples).max())
    return 20 * math.log10(peak) if peak > 0 else float("-inf")


def limiter_gain(peak_envelope: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """A look-ahead limiter's gain per sample, so that gain x peak <= ceiling everywhere.

    The needed gain min(1, ceiling / peak) is held by a minimum filter over +-`LIMITER_RELEASE_S`
    and then smoothed by a moving average half as wide: each averaged value is at most the need
    at the centre sample (it is within the hold of all of them), so no peak gets through, and
    the gain falls before a peak and recovers after it over tens of milliseconds (no clicks).
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(peak_envelope, 1e-12))
    if need.min() >= 1.0:
        return np.ones_like(need)
    hold = max(1, int(LIMITER_RELEASE_S * rate))
    held = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    return np.minimum(uniform_filter1d(held, size=hold | 1, mode="nearest"), need)


def normalised_samples(samples: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, LoudnessReport]:
    """[samples, channels] float brought to `target_lufs`, true peak under the ceiling (module docstring)."""
    samples = np.asarray(samples, np.float32)
    input_lufs = integrated_loudness(samples, rate)
    input_peak = true_peak_dbtp(samples)
    if not math.isfinite(input_lufs):
        raise AudioError("the script audio is silent: there is no loudness to normalise (use loudness target 'off')")
    ceiling = 10 ** ((TRUE_PEAK_CEILING_DBTP - CODEC_HEADROOM_DB) / 20)
    gain_db = target_lufs - input_lufs
    envelope = true_peak_envelope(samples)
    output, output_lufs, limited = samples, input_lufs, 1.0
    for _ in range(12):
        gain = 10 ** (gain_db / 20)
        limiting = limiter_gain(envelope * gain, ceiling, rate)
        output = samples * (gain * limiting).astype(np.float32)[:, np.newaxis]
        output_lufs = integrated_loudness(output, rate)
        limited = float(limiting.min())
        shortfall = target_lufs - output_lufs
        if abs(shortfall) <= TARGET_TOLERANCE_LU / 2 or limited >= 1.0:
            break
        gain_db += shortfall
    # The smoothed gain between 4x samples can leave a hair over the ceiling: one linear trim.
    peak = float(true_peak_envelope(output).max())
    if peak > ceiling:
        output = output * np.float32(ceiling / peak)
        output_lufs = integrated_loudness(output, rate)
    report = LoudnessReport(
        target_lufs=float(target_lufs),
        input_lufs=round(input_lufs, 2),
        input_true_peak_dbtp=round(input_peak, 2),
        output_lufs=round(output_lufs, 2),
        output_true_peak_dbtp=round(true_peak_dbtp(output), 2),
        gain_db=round(gain_db, 2),
        limited_db=round(-20 * math.log10(max(limited, 1e-12)), 2),
    )
    return output.astype(np.float32), report
