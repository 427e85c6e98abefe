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

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sonic_model.cells import is_missing
from sonic_model.errors import AudioError, ParameterError
from sonic_model.files import temporary_beside
from sonic_model.loudness_meter import (
    TRUE_PEAK_CONTEXT,
    LoudnessMeter,
    Window,
    blocks_of,
    reblocked,
    true_peak_envelope,
    true_peak_overshoot_bound,
    windows_of,
)

# Also read from here (sonic_model/sync.py).
from sonic_model.loudness_meter import integrated_loudness as integrated_loudness

DEFAULT_TARGET_LUFS = -14.0
TRUE_PEAK_CEILING_DBTP = -1.0
CODEC_HEADROOM_DB = 1.0
TARGET_TOLERANCE_LU = 0.2
# The range a target may take (quieter than -40 LUFS is inaudible on a phone; -5 is beyond any platform).
TARGET_RANGE_LUFS = (-40.0, -5.0)
OUTPUT_SAMPLE_RATE = 48000
OUTPUT_CHANNELS = 2
LIMITER_RELEASE_S = 0.005


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
    for window in windows_of(reblocked(replay()), TRUE_PEAK_CONTEXT):
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
    for window in windows_of(reblocked(replay()), _limiter_context(rate) + out_context):
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

    report = normalise_stream(lambda: blocks_of(samples), rate, target_lufs, write)
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
