"""The whole-array loudness normaliser as it was before it was streamed (issue 13), kept as a reference.

`sonic_model.loudness` now measures and applies a block at a time; tests/test_loudness_streaming.py
checks that it still gives what this version gave on the whole signal at once. Same constants
(target tolerance, ceiling, limiter release) as the library, so only the streaming differs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

from sonic_model.loudness import (
    CODEC_HEADROOM_DB,
    LIMITER_RELEASE_S,
    TARGET_TOLERANCE_LU,
    TRUE_PEAK_CEILING_DBTP,
    _k_weighting,
)


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    block, hop = int(0.4 * rate), int(0.1 * rate)
    if len(samples) < block:
        return float("-inf")
    filtered = samples.astype(np.float64)
    for b, a in _k_weighting(rate):
        filtered = lfilter(b, a, filtered, axis=0)
    power = np.concatenate([[0.0], np.cumsum((filtered * filtered).sum(axis=1))])
    starts = np.arange(0, len(samples) - block + 1, hop)
    block_power = (power[starts + block] - power[starts]) / block
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10 * np.log10(block_power)
    gated = block_power[block_loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    with np.errstate(divide="ignore"):
        gated = gated[-0.691 + 10 * np.log10(gated) > relative_gate]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def true_peak_envelope(samples: np.ndarray) -> np.ndarray:
    upsampled = np.abs(resample_poly(samples.astype(np.float64), 4, 1, axis=0)).max(axis=1)
    return np.maximum(upsampled.reshape(len(samples), 4).max(axis=1), np.abs(samples).max(axis=1)).astype(np.float32)


def limiter_gain(peak_envelope: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    need = np.minimum(1.0, ceiling / np.maximum(peak_envelope, 1e-12))
    if need.min() >= 1.0:
        return np.ones_like(need)
    hold = max(1, int(LIMITER_RELEASE_S * rate))
    held = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    return np.minimum(uniform_filter1d(held, size=hold | 1, mode="nearest"), need)


def normalised_samples(samples: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, dict]:
    samples = np.asarray(samples, np.float32)
    input_lufs = integrated_loudness(samples, rate)
    ceiling = 10 ** ((TRUE_PEAK_CEILING_DBTP - CODEC_HEADROOM_DB) / 20)
    gain_db = target_lufs - input_lufs
    envelope = true_peak_envelope(samples)
    for _ in range(12):
        applied_db = gain_db
        gain = 10 ** (gain_db / 20)
        limiting = limiter_gain(envelope * gain, ceiling, rate)
        output = samples * (gain * limiting).astype(np.float32)[:, np.newaxis]
        output_lufs = integrated_loudness(output, rate)
        limited = float(limiting.min())
        shortfall = target_lufs - output_lufs
        if abs(shortfall) <= TARGET_TOLERANCE_LU / 2 or limited >= 1.0:
            break
        gain_db += shortfall
    peak = float(true_peak_envelope(output).max())
    if peak > ceiling:
        output = output * np.float32(ceiling / peak)
    return output, {
        "input_lufs": input_lufs,
        "input_true_peak_dbtp": 20 * math.log10(float(true_peak_envelope(samples).max())),
        "output_lufs": integrated_loudness(output, rate),
        "output_true_peak_dbtp": 20 * math.log10(float(true_peak_envelope(output).max())),
        "gain_db": applied_db,
        "limited_db": -20 * math.log10(max(limited, 1e-12)),
    }
