"""Loudness: BS.1770 measurement, and normalising the script audio before it is muxed.

Platforms play everything at about -14 LUFS: a script recorded at -23 LUFS sounds weak next to
everything else, one at -8 is turned down with its peaks squashed. So every delivered video's
sound is normalised to a target (default -14 LUFS integrated, true peak at most -1 dBTP),
measured then applied:

1. the script is decoded once (at its own rate) and replayed at 48 kHz stereo float (what
   every video of the row carries), a chunk at a time;
2. measure: integrated loudness (ITU-R BS.1770-4 / EBU R128: K-weighting, 400 ms blocks,
   absolute and relative gates) and true peak (4x oversampled, BS.1770 annex 2);
3. apply one gain to the target. Where that gain would take the true peak over the ceiling, a
   look-ahead true-peak limiter lowers just those peaks (the gain falls over a few
   milliseconds before a peak and recovers after it: it never lets a peak through and never
   clicks); the gain is then raised by what the limiter took off the loudness and the limiter
   run again, until the result is within `TARGET_TOLERANCE_LU` of the target. Nothing clips.

Every step works a block at a time (`normalise_stream`): the meter keeps its filter state and
two running sums per 100 ms, the true peak and the limiter see each block with the context
their filters need, and the result is the whole-array computation's (tests/loudness_reference.py),
with memory that does not grow with the script's length.

The ceiling is `TRUE_PEAK_CEILING_DBTP` minus `CODEC_HEADROOM_DB`, because the AAC encode adds
a few tenths of a dB of inter-sample overshoot, and more on some clips: with 0.5 dB of headroom
a lip-sync-delayed render (its sound encoded once, from the normalised WAV, shifted) measured
-0.98 dBTP. With 1 dB the delivered file measures <= -1 dBTP.

Why not ffmpeg's `loudnorm` (two-pass): on this machine it took 3-4 s per script (it runs at
192 kHz), and on short speech its dynamic mode ended 1.7 LU under the target (-15.7 for -14).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sonic_model.cells import is_missing
from sonic_model.errors import AudioError, ParameterError
from sonic_model.files import temporary_beside

DEFAULT_TARGET_LUFS = -14.0
TRUE_PEAK_CEILING_DBTP = -1.0
CODEC_HEADROOM_DB = 1.0
TARGET_TOLERANCE_LU = 0.2
# The range a target may take (quieter than -40 LUFS is inaudible on a phone; -5 is beyond any platform).
TARGET_RANGE_LUFS = (-40.0, -5.0)
OUTPUT_SAMPLE_RATE = 48000
OUTPUT_CHANNELS = 2
LIMITER_RELEASE_S = 0.005
TRUE_PEAK_OVERSAMPLING = 4


@dataclass(frozen=True)
class LoudnessReport:
    """What normalisation measured and made (LUFS, dBTP, dB)."""

    target_lufs: float
    input_lufs: float
    input_true_peak_dbtp: float
    output_lufs: float
    output_true_peak_dbtp: float
    gain_db: float  # the one gain applied
    limited_db: float  # the most the limiter took off any peak (0 = linear gain only)

    def as_dict(self) -> dict:
        return asdict(self)


def parse_loudness_target(value) -> float | None:
    """A target in LUFS from a number or text ("-14", "-16 LUFS"), or None for "off" / empty."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("lufs").strip()
        if text in ("", "off", "none", "no", "false"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"loudness target {value!r} is not a number of LUFS (e.g. -14) or 'off'") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"loudness target {value!r} is not a number of LUFS (e.g. -14) or 'off'")
    value = float(value)
    low, high = TARGET_RANGE_LUFS
    if not math.isfinite(value) or not low <= value <= high:
        raise ParameterError(
            f"loudness target {value:g} LUFS is out of range; allowed: {low:g} to {high:g} LUFS, or 'off'"
        )
    return value


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
        self._filters = _k_weighting(rate)
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
        upsampled = _max_abs_over_channels(_oversampled(samples[lo:hi].astype(np.float64)))
        middle = upsampled[(start - lo) * factor : (end - lo) * factor]
        # max over each sample's 4 oversampled values (strided maxima: a reduce over a short axis is slow)
        peak = np.maximum(
            np.maximum(middle[0::factor], middle[1::factor]), np.maximum(middle[2::factor], middle[3::factor])
        )
        envelope[start:end] = np.maximum(peak, _max_abs_over_channels(samples[start:end]))
    return envelope


def _max_abs_over_channels(samples: np.ndarray) -> np.ndarray:
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
    for window in _windows(_blocks_of(samples), TRUE_PEAK_CONTEXT):
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


def _blocks_of(samples: np.ndarray, size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def _reblocked(chunks: Iterable[np.ndarray], size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
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


def _windows(blocks: Iterable[np.ndarray], context: int) -> Iterator[Window]:
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


# --- normalisation -------------------------------------------------------------------------------


def limiter_gain(peak_envelope: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """A look-ahead limiter's gain per sample, so that gain x peak <= ceiling everywhere.

    The needed gain min(1, ceiling / peak) is held by a minimum filter over +-`LIMITER_RELEASE_S`
    and then smoothed by a moving average half as wide: each averaged value is at most the need
    at the centre sample (it is within the hold of all of them), so no peak gets through, and
    the gain falls before a peak and recovers after it over a few milliseconds (no clicks).
    Short on purpose: the gain dips under the peaks themselves, not under whole syllables, so
    the speech's envelope (what the mouth follows and QA's sync measure compares it with) is
    kept; a 20 ms hold lowered a clip's mouth-envelope correlation from 0.34 to 0.27.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(peak_envelope, 1e-12))
    if need.min(initial=1.0) >= 1.0:
        return np.ones_like(need)
    hold = _limiter_hold(rate)
    held = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    return np.minimum(uniform_filter1d(held, size=hold | 1, mode="nearest"), need)


def _limiter_hold(rate: int) -> int:
    return max(1, int(LIMITER_RELEASE_S * rate))


def _limiter_context(rate: int) -> int:
    """Samples of each side one limiter gain depends on: the hold, half the smoothing, and the envelope's context."""
    hold = _limiter_hold(rate)
    return hold + (hold | 1) // 2 + 1 + TRUE_PEAK_CONTEXT


Replay = Callable[[], Iterable[np.ndarray]]  # a fresh pass over the signal, [samples, channels] a block at a time


# The limiter and the true-peak meter look at the signal in tiles of this many samples: a tile
# whose peak cannot reach the ceiling (or beat the peak found so far) is not oversampled.
TILE_SAMPLES = 1024
# Samples on each side of a tile that its 4x oversampled values can depend on (filter half-span 10).
TILE_REACH = 16


class _Tiles:
    """What the passes learn about each tile of the input: its largest |sample| (with the reach of
    the oversampling filter) and, once computed, its largest true-peak value (NaN until then).
    Two floats per 1024 samples: the only figures kept that grow with the length (0.75 KB/s)."""

    def __init__(self) -> None:
        self._sample_peaks: list[np.ndarray] = []
        self.sample_peak = np.zeros(0)
        self.true_peak = np.zeros(0)

    def learn(self, window: Window) -> np.ndarray:
        """First pass: record (and return) the block's tiles' sample peaks (blocks are whole tiles but the last)."""
        peaks = _tile_maxima(window, window.inner.start, window.inner.stop)
        self._sample_peaks.append(peaks)
        return peaks

    def finish(self) -> None:
        self.sample_peak = np.concatenate(self._sample_peaks) if self._sample_peaks else np.zeros(0)
        self.true_peak = np.full(len(self.sample_peak), np.nan)
        self._sample_peaks = []

    def true_peak_bound(self, tile: int) -> float:
        """The tile's largest true-peak value, or the most it can be (`true_peak_overshoot_bound`)."""
        known = self.true_peak[tile]
        return float(known) if known == known else float(self.sample_peak[tile]) * true_peak_overshoot_bound()


def _tile_maxima(window: Window, lo: int, hi: int) -> np.ndarray:
    """Per tile in window.samples[lo:hi] (tile-aligned in the signal), max |sample| within `TILE_REACH` of it."""
    samples = window.samples
    peaks = []
    for a in range(lo, hi, TILE_SAMPLES):
        b = min(hi, a + TILE_SAMPLES)
        stretch = samples[max(0, a - TILE_REACH) : min(len(samples), b + TILE_REACH)]
        peaks.append(float(np.abs(stretch).max(initial=0.0)))
    return np.array(peaks)


def _tile_envelope(samples: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """`true_peak_envelope` of samples[lo:hi], computed from the stretch and its context only."""
    a, b = max(0, lo - TRUE_PEAK_CONTEXT), min(len(samples), hi + TRUE_PEAK_CONTEXT)
    return true_peak_envelope(samples[a:b])[lo - a : hi - a]


def _measure_input(replay: Replay, rate: int) -> tuple[LoudnessMeter, float, _Tiles]:
    """First pass: the input's loudness meter, true peak (linear) and tiles."""
    meter, tiles, peak = LoudnessMeter(rate), _Tiles(), 0.0
    bound = true_peak_overshoot_bound()
    for window in _windows(_reblocked(replay()), TRUE_PEAK_CONTEXT):
        meter.add(window.samples[window.inner])
        peak = _window_true_peak(window, tiles.learn(window) * bound, peak)
    tiles.finish()
    return meter, peak, tiles


def _window_true_peak(window: Window, tile_bounds: np.ndarray, peak: float) -> float:
    """The larger of `peak` and the inner block's true peak; only tiles whose bound beats `peak` are oversampled."""
    for index in np.argsort(-tile_bounds, kind="stable"):
        if tile_bounds[index] <= peak:
            break
        lo = window.inner.start + int(index) * TILE_SAMPLES
        hi = min(window.inner.stop, lo + TILE_SAMPLES)
        peak = max(peak, float(_tile_envelope(window.samples, lo, hi).max(initial=0.0)))
    return peak


def _limited_blocks(
    replay: Replay, rate: int, gain: float, ceiling: float, tiles: _Tiles
) -> Iterator[tuple[Window, float, np.ndarray]]:
    """The signal times `gain`, limited under `ceiling` (`limiter_gain`), a block at a time.

    Yields each output block as a `Window` with `TRUE_PEAK_CONTEXT` samples of output on each
    side (for true-peak metering), the smallest limiter gain in the block, and per tile of the
    block a bound of the output's true peak there. Only tiles whose true peak times `gain` could
    reach the ceiling are oversampled (elsewhere the limiter's need is exactly 1), so the result
    is the whole-array limiter's.
    """
    out_context = TRUE_PEAK_CONTEXT
    bound = true_peak_overshoot_bound()
    for window in _windows(_reblocked(replay()), _limiter_context(rate) + out_context):
        samples = window.samples
        envelope = np.zeros(len(samples), np.float32)
        first_tile = window.start // TILE_SAMPLES
        for tile in range(first_tile, min(len(tiles.sample_peak), -(-(window.start + len(samples)) // TILE_SAMPLES))):
            if tiles.true_peak_bound(tile) * gain <= ceiling:
                continue  # need is 1 all over this tile
            lo = max(0, tile * TILE_SAMPLES - window.start)
            hi = min(len(samples), (tile + 1) * TILE_SAMPLES - window.start)
            envelope[lo:hi] = _tile_envelope(samples, lo, hi)
            whole = (lo >= TRUE_PEAK_CONTEXT or window.start == 0) and (
                hi + TRUE_PEAK_CONTEXT <= len(samples) or window.last
            )
            if whole and hi - lo == min(TILE_SAMPLES, len(tiles.sample_peak) * TILE_SAMPLES):
                tiles.true_peak[tile] = float(envelope[lo:hi].max(initial=0.0))
        # The output stretch: the block and `out_context` of each side (cut at the signal's ends).
        lo = max(0, window.inner.start - out_context)
        hi = min(len(samples), window.inner.stop + out_context)
        inner = slice(window.inner.start - lo, window.inner.stop - lo)
        limiting = limiter_gain(envelope * gain, ceiling, rate)[lo:hi]
        applied = gain * limiting
        output = samples[lo:hi] * applied.astype(np.float32)[:, np.newaxis]
        # Per inner tile, the most the output's true peak can be: y = x * G, so each oversampled
        # value is at most max G x (the input's true peak) + bound x max |x| x (max G - min G).
        out = Window(output, inner, window.start + lo, window.last)
        peaks = []
        for a in range(inner.start, inner.stop, TILE_SAMPLES):
            b = min(inner.stop, a + TILE_SAMPLES)
            reach = applied[max(0, a - TILE_REACH) : b + TILE_REACH]
            tile = (window.start + lo + a) // TILE_SAMPLES
            spread = float(reach.max() - reach.min())
            peaks.append(float(reach.max()) * tiles.true_peak_bound(tile) + bound * tiles.sample_peak[tile] * spread)
        yield out, float(limiting[inner].min(initial=1.0)), np.array(peaks)


def normalise_stream(
    replay: Replay, rate: int, target_lufs: float, write: Callable[[np.ndarray], None] | None = None
) -> LoudnessReport:
    """Bring a signal to `target_lufs`, true peak under the ceiling (module docstring), a block at a time.

    `replay()` starts a new pass over the signal ([samples, channels] float blocks of any
    size); it is called once to measure, once per limiter iteration, and once more to hand the
    result to `write` (in blocks, in order). Memory stays a few blocks whatever the length.
    """
    meter, input_peak, tiles = _measure_input(replay, rate)
    input_lufs = meter.integrated()
    if not math.isfinite(input_lufs):
        raise AudioError("the script audio is silent: there is no loudness to normalise (use loudness target 'off')")
    ceiling = 10 ** ((TRUE_PEAK_CEILING_DBTP - CODEC_HEADROOM_DB) / 20)
    gain_db = target_lufs - input_lufs
    for _ in range(12):
        applied_db = gain_db
        gain = 10 ** (gain_db / 20)
        meter, peak, limited = LoudnessMeter(rate), 0.0, 1.0
        for window, block_limited, tile_bounds in _limited_blocks(replay, rate, gain, ceiling, tiles):
            meter.add(window.samples[window.inner])
            peak = _window_true_peak(window, tile_bounds, peak)
            limited = min(limited, block_limited)
        output_lufs = meter.integrated()
        shortfall = target_lufs - output_lufs
        if abs(shortfall) <= TARGET_TOLERANCE_LU / 2 or limited >= 1.0:
            break
        gain_db += shortfall
    # The smoothed gain between 4x samples can leave a hair over the ceiling: one linear trim.
    trim = np.float32(1.0)
    if peak > ceiling:
        trim = np.float32(ceiling / peak)
        output_lufs = meter.integrated(float(trim))
    if write is not None:
        for window, _, _ in _limited_blocks(replay, rate, 10 ** (applied_db / 20), ceiling, tiles):
            block = window.samples[window.inner]
            write(block if trim == 1 else block * trim)
    return LoudnessReport(
        target_lufs=float(target_lufs),
        input_lufs=round(input_lufs, 2),
        input_true_peak_dbtp=round(_dbtp(input_peak), 2),
        output_lufs=round(output_lufs, 2),
        output_true_peak_dbtp=round(_dbtp(peak * float(trim)), 2),
        gain_db=round(applied_db, 2),
        limited_db=round(-20 * math.log10(max(limited, 1e-12)), 2),
    )


def _dbtp(peak: float) -> float:
    return 20 * math.log10(peak) if peak > 0 else float("-inf")


def normalised_samples(samples: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, LoudnessReport]:
    """[samples, channels] float brought to `target_lufs`, true peak under the ceiling (`normalise_stream`)."""
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    output = np.empty_like(samples)
    written = 0

    def write(block: np.ndarray) -> None:
        nonlocal written
        output[written : written + len(block)] = block
        written += len(block)

    report = normalise_stream(lambda: _blocks_of(samples), rate, target_lufs, write)
    return output, report


# Source samples resampled to 48 kHz at a time.
SOURCE_CHUNK_SAMPLES = 1 << 15


def delivery_sound(audio_path: str | Path) -> Replay:
    """The script's presented sound at 48 kHz stereo float32, as a replay of [samples, 2] blocks.

    Decoded like every other use of the script (`sonic_model.audio.decode_audio_stream`: its
    first audio stream, laid out by presentation time, from its first sample), so the
    normalised track holds the very samples the generator listened to. The script is held at
    its own rate and channels (as the generator holds it at 16 kHz); each pass resamples it to
    48 kHz a chunk at a time. Mono goes to both sides at -3 dB (as ffmpeg's upmix does: the
    stereo file then measures what the mono script measured); more than two channels are mixed
    down to stereo with the matrix `ffmpeg -ac 2` uses.
    """
    from sonic_model.audio import decode_audio_stream

    stream = decode_audio_stream(audio_path, stereo=True)
    source, rate = stream.samples, stream.sample_rate  # [channels, n], 1 or 2 channels

    def replay() -> Iterator[np.ndarray]:
        import soxr

        resampler = None
        if rate != OUTPUT_SAMPLE_RATE:
            resampler = soxr.ResampleStream(rate, OUTPUT_SAMPLE_RATE, source.shape[0], dtype="float32", quality="HQ")
        length = source.shape[1]
        for start in range(0, length, SOURCE_CHUNK_SAMPLES):
            chunk = np.ascontiguousarray(source[:, start : start + SOURCE_CHUNK_SAMPLES].T)
            if resampler is not None:
                chunk = resampler.resample_chunk(chunk, last=start + SOURCE_CHUNK_SAMPLES >= length)
            if chunk.shape[1] == 1:
                chunk = np.repeat(chunk * np.float32(math.sqrt(0.5)), OUTPUT_CHANNELS, axis=1)
            yield chunk

    return replay


def decode_for_delivery(audio_path: str | Path) -> np.ndarray:
    """The script's presented sound at 48 kHz stereo float32 [samples, 2], whole (`delivery_sound`)."""
    return np.concatenate(list(delivery_sound(audio_path)()), axis=0)


def normalise_loudness(
    audio_path: str | Path, out_path: str | Path, target_lufs: float = DEFAULT_TARGET_LUFS
) -> LoudnessReport:
    """Write `audio_path` normalised to `target_lufs` as a 48 kHz stereo float WAV at `out_path`.

    Streamed (`normalise_stream`): the WAV is written a block at a time, and the mux reads it
    from disk. The file appears under `out_path` only when complete.
    """
    import soundfile

    target = parse_loudness_target(target_lufs)
    if target is None:
        raise ParameterError("normalise_loudness needs a target; for 'off' mux the script as it is")
    replay = delivery_sound(audio_path)
    out_path = Path(out_path)
    tmp = temporary_beside(out_path, ".partial.wav")
    try:
        with soundfile.SoundFile(
            tmp, "w", samplerate=OUTPUT_SAMPLE_RATE, channels=OUTPUT_CHANNELS, subtype="FLOAT", format="WAV"
        ) as sink:
            report = normalise_stream(replay, OUTPUT_SAMPLE_RATE, target, sink.write)
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return report
