"""The file's own audio track: decoding it, and its ITU-R BS.1770 integrated loudness (K-weighted, gated)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def decode_audio_track(video_path: str | Path) -> tuple[np.ndarray, int] | None:
    """The file's first audio track as float32 [samples, channels] at its own rate (None if absent).

    Decoded at the native rate and channel layout because clipping and loudness are properties
    of what is delivered, which a downmix or resampling would blur. Laid on the picture's
    timeline (`sonic_model.video_reader.audio_on_picture_timeline`): sample 0 plays with frame 0.
    """
    from sonic_model.video_reader import audio_on_picture_timeline

    track = audio_on_picture_timeline(video_path)
    if track is None:
        return None
    return np.ascontiguousarray(track.samples.T), int(track.sample_rate)


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS) of [samples, channels]; -inf for silence.

    K-weighting is the standard's two biquads (high shelf +4 dB at 1.5 kHz, high pass at
    38 Hz), designed for any sample rate the way pyloudnorm does; gating: 400 ms blocks with
    75 % overlap, absolute gate -70 LUFS, relative gate -10 LU. Channel weights are 1 (mono and
    stereo front channels).
    """
    from scipy.signal import lfilter

    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    block, hop = int(0.4 * rate), int(0.1 * rate)
    if len(samples) < block:
        return float("-inf")
    weighted = samples.astype(np.float64)
    for b, a in _k_weighting(rate):
        weighted = lfilter(b, a, weighted, axis=0)
    power = np.cumsum(np.concatenate([np.zeros((1, weighted.shape[1])), weighted**2]), axis=0)
    starts = np.arange(0, len(weighted) - block + 1, hop)
    block_power = ((power[starts + block] - power[starts]) / block).sum(axis=1)
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10 * np.log10(block_power)
    gated = block_power[block_loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    with np.errstate(divide="ignore"):
        gated = gated[-0.691 + 10 * np.log10(gated) > relative_gate]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        _biquad("high_shelf", gain_db=4.0, q=1 / math.sqrt(2), fc=1500.0, rate=rate),
        _biquad("high_pass", gain_db=0.0, q=0.5, fc=38.0, rate=rate),
    ]


def _biquad(kind: str, *, gain_db: float, q: float, fc: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook biquad (the form pyloudnorm uses for BS.1770's K filter)."""
    big_a = 10 ** (gain_db / 40.0)
    w0 = 2 * math.pi * fc / rate
    alpha = math.sin(w0) / (2 * q)
    cos = math.cos(w0)
    if kind == "high_shelf":
        root = 2 * math.sqrt(big_a) * alpha
        b = [big_a * ((big_a + 1) + (big_a - 1) * cos + root), -2 * big_a * ((big_a - 1) + (big_a + 1) * cos),
             big_a * ((big_a + 1) + (big_a - 1) * cos - root)]
        a = [(big_a + 1) - (big_a - 1) * cos + root, 2 * ((big_a - 1) - (big_a + 1) * cos),
             (big_a + 1) - (big_a - 1) * cos - root]
    else:
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]
