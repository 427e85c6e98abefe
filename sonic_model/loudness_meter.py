"""Loudness measurement: ITU-R BS.1770-4 integrated loudness and true peak, a block at a time.

One job: measuring. The normaliser (`sonic_model/loudness.py`) and QA's loudness check
(`sonic_model/qa/loudness.py`) both measure with this one implementation. Checked against an
outside reference, ffmpeg's `ebur128` filter, in `tests/test_loudness_ebur128.py` (speech, a
sine, noise, a stereo file), and against the whole-array code it replaced in
`tests/test_loudness_streaming.py`.

Signals are [samples, channels] float arrays (mono may be [samples]); long signals are fed in
blocks (`LoudnessMeter.add`, `TruePeakMeter.add` with `Window`s that carry the context the
oversampling filter needs), so memory does not grow with the length.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

TRUE_PEAK_OVERSAMPLING = 4

# --- measurement ---------------------------------------------------------------------------------

# Signals are filtered, oversampled and limited this many samples at a time (1.4 s at 48 kHz).
BLOCK_SAMPLES = 1 << 16


class LoudnessMeter:
    """ITU-R BS.1770-4 integrated loudness, fed a block at a time (memory: two floats per 100 ms).

    K-weighting is the standard's two biquads (high shelf +4 dB at 1.5 kHz, high pass at
    38 Hz), designed for any sample rate the way pyloudnorm does, their state carried from block
    to block; gating: 400 ms blocks with 75 % overlap, absolute gate -70 LUFS, relative gate
    -10 LU. Channel weights are 1 (mono and stereo front channels). Only the running sum of the
    K-weighted power at each gating block's start and end is kept, so the figure is the one a
    whole-array computation gives (to rounding), whatever the length.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.block, self.hop = int(0.4 * rate), int(0.1 * rate)
        self._filters = k_weighting(rate)
        self._states: list[np.ndarray] | None = None
        self._position = 0  # samples fed so far
        self._total = 0.0  # K-weighted power summed over them
        self._at_starts: list[float] = []  # running power at sample k * hop (k = 0, 1, ...)
        self._at_ends: list[float] = []  # running power at sample k * hop + block

    def add(self, samples: np.ndarray) -> None:
        """Feed the next [samples, channels] (or mono [samples]) of the signal."""
        from scipy.signal import lfilter

        if samples.ndim == 1:
            samples = samples[:, np.newaxis]
        if len(samples) == 0:
            return
        chunk = samples.astype(np.float64)
        if self._states is None:
            self._states = [np.zeros((max(len(a), len(b)) - 1, chunk.shape[1])) for b, a in self._filters]
        for index, (b, a) in enumerate(self._filters):
            chunk, self._states[index] = lfilter(b, a, chunk, axis=0, zi=self._states[index])
        running = np.empty(len(chunk) + 1)
        running[0] = 0.0
        np.cumsum((chunk * chunk).sum(axis=1), out=running[1:])
        running += self._total
        first, last = self._position, self._position + len(chunk)  # running[i] = total at sample first + i
        for marks, offset in ((self._at_starts, 0), (self._at_ends, self.block)):
            k = len(marks)
            while k * self.hop + offset <= last:
                marks.append(float(running[k * self.hop + offset - first]))
                k += 1
        self._position, self._total = last, float(running[-1])

    def block_powers(self) -> np.ndarray:
        """Mean K-weighted power of every complete 400 ms gating block so far."""
        count = len(self._at_ends)
        return (np.array(self._at_ends) - np.array(self._at_starts[:count])) / self.block

    def integrated(self, gain: float = 1.0) -> float:
        """Integrated loudness (LUFS) of what was fed, scaled by `gain`; -inf for silence or < 400 ms."""
        return gated_loudness(self.block_powers() * (gain * gain))


def gated_loudness(block_power: np.ndarray) -> float:
    """BS.1770-4 gating over the 400 ms blocks' mean powers: the integrated loudness (LUFS)."""
    if block_power.size == 0:
        return float("-inf")
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10 * np.log10(block_power)
    gated = block_power[block_loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    with np.errstate(divide="ignore"):
        gated = gated[-0.691 + 10 * np.log10(gated) > relative_gate]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS) of [samples, channels]; -inf for silence (`LoudnessMeter`)."""
    meter = LoudnessMeter(rate)
    for start in range(0, len(samples), BLOCK_SAMPLES):
        meter.add(samples[start : start + BLOCK_SAMPLES])
    return meter.integrated()


def k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
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
        b = [
            big_a * ((big_a + 1) + (big_a - 1) * cos + root),
            -2 * big_a * ((big_a - 1) + (big_a + 1) * cos),
            big_a * ((big_a + 1) + (big_a - 1) * cos - root),
        ]
        a = [
            (big_a + 1) - (big_a - 1) * cos + root,
            2 * ((big_a - 1) - (big_a + 1) * cos),
            (big_a + 1) - (big_a - 1) * cos - root,
        ]
    else:
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


# Input samples on each side that one 4x oversampled value depends on (resample_poly's filter
# spans 10), with margin: envelopes of a stretch taken with this much context are exact.
TRUE_PEAK_CONTEXT = 64


@functools.lru_cache(maxsize=1)
def _interpolation_filter() -> np.ndarray:
    """resample_poly's 4x interpolation filter (Kaiser-windowed sinc, 81 taps, scaled by 4), designed once."""
    from scipy.signal import firwin

    factor = TRUE_PEAK_OVERSAMPLING
    return firwin(2 * 10 * factor + 1, 1.0 / factor, window=("kaiser", 5.0)) * factor


def _oversampled(samples: np.ndarray) -> np.ndarray:
    """`scipy.signal.resample_poly(samples, 4, 1, axis=0)` for float64 [n, channels], without designing
    the filter again on every call (which took longer than the filtering on short stretches)."""
    from scipy.signal import upfirdn

    factor, half_len = TRUE_PEAK_OVERSAMPLING, 10 * TRUE_PEAK_OVERSAMPLING
    taps = _interpolation_filter()
    n_in = len(samples)
    n_out = n_in * factor
    n_pre_pad, n_post_pad = 1, 0
    n_pre_remove = half_len + n_pre_pad
    while ((n_in - 1) * factor + len(taps) + n_pre_pad + n_post_pad - 1) + 1 < n_out + n_pre_remove:
        n_post_pad += 1
    taps = np.concatenate((np.zeros(n_pre_pad), taps, np.zeros(n_post_pad)))
    return upfirdn(taps, samples, factor, 1, axis=0)[n_pre_remove : n_pre_remove + n_out]


@functools.lru_cache(maxsize=1)
def true_peak_overshoot_bound() -> float:
    """The most a 4x oversampled value can exceed the largest |sample| it is made from (x 2.24).

    The L1 norm of the busiest phase of resample_poly's interpolation filter: a stretch whose
    samples stay under ceiling / bound cannot have a true peak over the ceiling, so its
    oversampling (the costly part of a true-peak meter) can be skipped.
    """
    factor, taps = TRUE_PEAK_OVERSAMPLING, _interpolation_filter()
    return float(max(np.abs(taps[phase::factor]).sum() for phase in range(factor)))


def true_peak_envelope(samples: np.ndarray) -> np.ndarray:
    """Per sample, the largest |value| of the 4x oversampled signal around it (all channels), float32.

    Oversampled a block at a time (with `TRUE_PEAK_CONTEXT` samples on each side for the
    interpolation filter); beyond the ends the signal is taken as zero.
    """
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    factor, context = TRUE_PEAK_OVERSAMPLING, TRUE_PEAK_CONTEXT
    envelope = np.empty(len(samples), np.float32)
    for start in range(0, len(samples), BLOCK_SAMPLES):
        end = min(len(samples), start + BLOCK_SAMPLES)
        lo, hi = max(0, start - context), min(len(samples), end + context)
        upsampled = max_abs_over_channels(_oversampled(samples[lo:hi].astype(np.float64)))
        middle = upsampled[(start - lo) * factor : (end - lo) * factor]
        # max over each sample's 4 oversampled values (strided maxima: a reduce over a short axis is slow)
        peak = np.maximum(
            np.maximum(middle[0::factor], middle[1::factor]), np.maximum(middle[2::factor], middle[3::factor])
        )
        envelope[start:end] = np.maximum(peak, max_abs_over_channels(samples[start:end]))
    return envelope


def max_abs_over_channels(samples: np.ndarray) -> np.ndarray:
    """|samples| maximised over the channel axis, one channel at a time (fast for [n, 2])."""
    peak = np.abs(samples[:, 0])
    for channel in range(1, samples.shape[1]):
        np.maximum(peak, np.abs(samples[:, channel]), out=peak)
    return peak


def true_peak_dbtp(samples: np.ndarray) -> float:
    """True peak (dBTP) of [samples, channels]: 4x oversampled, BS.1770-4 annex 2."""
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    meter = TruePeakMeter()
    for window in windows_of(blocks_of(samples), TRUE_PEAK_CONTEXT):
        meter.add(window)
    return meter.dbtp()


class TruePeakMeter:
    """The largest 4x oversampled |value| of a signal fed as `Window`s; oversamples only where it could matter."""

    def __init__(self) -> None:
        self.peak = 0.0

    def add(self, window: Window) -> None:
        if float(np.abs(window.samples).max(initial=0.0)) * true_peak_overshoot_bound() <= self.peak:
            return  # nothing here can beat the peak already found (see `true_peak_overshoot_bound`)
        envelope = true_peak_envelope(window.samples)[window.inner]
        self.peak = max(self.peak, float(envelope.max(initial=0.0)))

    def dbtp(self, gain: float = 1.0) -> float:
        peak = self.peak * gain
        return 20 * math.log10(peak) if peak > 0 else float("-inf")


# --- streaming -----------------------------------------------------------------------------------


@dataclass
class Window:
    """One block of a long signal with up to `context` samples of its neighbours on each side.

    `samples[inner]` is the block itself; the context stops at the signal's ends (where a
    whole-array computation would pad), so whatever needs at most `context` samples of each
    side computes the block's values exactly as it would on the whole array.
    """

    samples: np.ndarray  # [before + block + after, channels]
    inner: slice
    start: int = 0  # the signal's sample index of samples[0]
    last: bool = False  # the window reaches the signal's end


def blocks_of(samples: np.ndarray, size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def reblocked(chunks: Iterable[np.ndarray], size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The same samples in blocks of exactly `size` (the last one shorter); empty chunks dropped."""
    pending: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        pending.append(chunk)
        held += len(chunk)
        while held >= size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:size]
            rest = joined[size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield np.concatenate(pending)


def windows_of(blocks: Iterable[np.ndarray], context: int) -> Iterator[Window]:
    """Each block with `context` samples of its neighbours (blocks must be at least `context` long but the last)."""
    previous_tail = None
    current = None
    position = 0  # the signal's index of the current block's first sample
    for block in blocks:
        if current is not None:
            yield _window(previous_tail, current, block[:context], position, last=False)
            previous_tail = current[-context:]
            position += len(current)
        current = block
    if current is not None:
        yield _window(previous_tail, current, None, position, last=True)


def _window(before: np.ndarray | None, block: np.ndarray, after: np.ndarray | None, position: int, *, last: bool):
    parts = [part for part in (before, block, after) if part is not None and len(part)]
    lead = 0 if before is None else len(before)
    samples = np.concatenate(parts) if len(parts) > 1 else block
    return Window(samples, slice(lead, lead + len(block)), position - lead, last)
