"""Loudness: BS.1770 measurement, and normalising the script audio before it is muxed.

Platforms play everything at about -14 LUFS: a script recorded at -23 LUFS sounds weak next to
everything else, one at -8 is turned down with its peaks squashed. So every delivered video's
sound is normalised to a target (default -14 LUFS integrated, true peak at most -1 dBTP),
measured then applied:

1. the script is decoded once to 48 kHz stereo float (what every video of the row carries);
2. measure: integrated loudness (ITU-R BS.1770-4 / EBU R128: K-weighting, 400 ms blocks,
   absolute and relative gates) and true peak (4x oversampled, BS.1770 annex 2);
3. apply one gain to the target. Where that gain would take the true peak over the ceiling, a
   look-ahead true-peak limiter lowers just those peaks (the gain falls over tens of
   milliseconds before a peak and recovers after it: it never lets a peak through and never
   clicks); the gain is then raised by what the limiter took off the loudness and the limiter
   run again, until the result is within `TARGET_TOLERANCE_LU` of the target. Nothing clips.

The ceiling is `TRUE_PEAK_CEILING_DBTP` minus `CODEC_HEADROOM_DB`, because the AAC encode adds
a few tenths of a dB of inter-sample overshoot; the delivered file then measures <= -1 dBTP.

Why not ffmpeg's `loudnorm` (two-pass): on this machine it took 3-4 s per script (it runs at
192 kHz), and on short speech its dynamic mode ended 1.7 LU under the target (-15.7 for -14).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sonic_model.errors import AudioError, ParameterError

DEFAULT_TARGET_LUFS = -14.0
TRUE_PEAK_CEILING_DBTP = -1.0
CODEC_HEADROOM_DB = 0.5
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
    if value is None:
        return None
    try:
        if value != value:  # NaN from a manifest cell  # noqa: PLR0124
            return None
    except (TypeError, ValueError):
        pass
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
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10 * np.log10(block_power)
    gated = block_power[block_loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    with np.errstate(divide="ignore"):
        gated = gated[-0.691 + 10 * np.log10(gated) > relative_gate]
    return float(-0.691 + 10 * np.log10(gated.mean()))


# Long signals are filtered / oversampled this many samples at a time.
CHUNK_SAMPLES = 1 << 18


def _k_weighted_power(samples: np.ndarray, rate: int) -> np.ndarray:
    """Per sample, the sum over channels of the K-weighted signal squared (float64, 1-D)."""
    from scipy.signal import lfilter

    filters = _k_weighting(rate)
    states = [np.zeros((max(len(a), len(b)) - 1, samples.shape[1])) for b, a in filters]
    power = np.empty(len(samples))
    for start in range(0, len(samples), CHUNK_SAMPLES):
        chunk = samples[start : start + CHUNK_SAMPLES].astype(np.float64)
        for index, (b, a) in enumerate(filters):
            chunk, states[index] = lfilter(b, a, chunk, axis=0, zi=states[index])
        power[start : start + len(chunk)] = (chunk * chunk).sum(axis=1)
    return power


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


# --- normalisation -------------------------------------------------------------------------------


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


def decode_for_delivery(audio_path: str | Path) -> np.ndarray:
    """The script's presented sound at 48 kHz stereo float32 [samples, 2] (what every video of the row carries).

    Decoded like every other use of the script (`sonic_model.audio.decode_audio_stream`: its
    first audio stream, laid out by presentation time, from its first sample), so the
    normalised track holds the very samples the generator listened to. Mono goes to both sides
    at -3 dB (as ffmpeg's upmix does: the stereo file then measures what the mono script
    measured); more than two channels are mixed down to their mean on both sides.
    """
    from sonic_model.audio import decode_audio_stream, resample

    stream = decode_audio_stream(audio_path)
    channels = stream.samples
    if channels.shape[0] == 1:
        channels = np.repeat(channels * np.float32(math.sqrt(0.5)), OUTPUT_CHANNELS, axis=0)
    elif channels.shape[0] > OUTPUT_CHANNELS:
        channels = np.repeat(channels.mean(axis=0, keepdims=True), OUTPUT_CHANNELS, axis=0)
    stereo = np.stack([resample(channel, stream.sample_rate, OUTPUT_SAMPLE_RATE) for channel in channels], axis=1)
    return np.ascontiguousarray(stereo, np.float32)


def normalise_loudness(
    audio_path: str | Path, out_path: str | Path, target_lufs: float = DEFAULT_TARGET_LUFS
) -> LoudnessReport:
    """Write `audio_path` normalised to `target_lufs` as a 48 kHz stereo float WAV at `out_path`.

    The file appears under `out_path` only when complete.
    """
    import soundfile

    target = parse_loudness_target(target_lufs)
    if target is None:
        raise ParameterError("normalise_loudness needs a target; for 'off' mux the script as it is")
    output, report = normalised_samples(decode_for_delivery(audio_path), OUTPUT_SAMPLE_RATE, target)
    out_path = Path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=".partial.wav", dir=out_path.parent)
    os.close(fd)
    try:
        soundfile.write(tmp, output, OUTPUT_SAMPLE_RATE, subtype="FLOAT", format="WAV")
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return report
