"""Audio -> per-frame animation controls for the preview generator.

Everything here is computed once per video before the first frame: the tracks are a few floats
per frame (a 10-minute clip is ~15 000 x 10 floats), so the whole clip can be looked at at once,
which makes smoothing and look-ahead free of lag.

Mouth (see `articulation` for the acoustic cues and their limits):
- *opening* follows the loudness of a 50 ms window centred 20 ms after the frame's middle (the
  lips move slightly before the sound they make), shaped by the spectrum: fricatives (energy
  above 2.5 kHz) open the mouth less, and the first formant sets how far the jaw drops (close
  vowels "ee"/"oo" less, open "ah" more);
- *spread* (-1 round .. +1 spread) follows F2 + F3: "oo"/"oh"/"w" round and narrow the lips,
  "ee"/"ay" spread them; it is judged per sound, not against the clip's average;
- *press* (0/1) shuts the lips for every "m", "b" and "p" found (for at least one frame,
  however short the closure) and presses them together;
- the mouth is shut in every pause of at least `CLOSED_SILENCE_S` between the speech segments
  (speech activity from the VAD, plus any stretch as loud as speech that the VAD cut short).

Face and head: blinks at natural intervals, slow head sway (filtered noise) plus small nods
and brow raises on stressed syllables. All randomness comes from one generator seeded with
`seed`, so a seed always gives the same video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonic_model.preview import articulation

FPS = 25
# Pauses at least this long close the mouth; shorter ones are left to the loudness.
CLOSED_SILENCE_S = 0.3
# Analysis window and how far ahead of the frame's centre it looks.
WINDOW_S = 0.050
LOOKAHEAD_S = 0.020
FFT_SIZE = 1024
FEATURE_BLOCK = 256  # frames analysed at once
BANDS_HZ = {"total": (80, 8000), "high": (2500, 8000)}
# Loudness range mapped to mouth opening 0..1, in dB below the clip's loud-speech level.
OPEN_RANGE_DB = 30.0
# Openings below this are a closed mouth (lips rest together in stops and very soft sounds).
CLOSED_BELOW = 0.06
# Mouth opening transitions into a long pause take this long (and start this early before speech).
PAUSE_RAMP_S = 0.08
# Frames this loud (dB below the clip's loud-speech level) right next to speech count as speech
# even where the VAD ended a segment early (it does on long sustained vowels) ...
LOUD_AS_SPEECH_DB = 18.0
# ... and so do voiced stretches at least this long, next to speech or not (a held "oooo").
VOICED_RUN_FRAMES = 5
# Jaw opening factor from the first formant: close vowels x JAW_BY_F1[0], open ones x JAW_BY_F1[1].
JAW_BY_F1 = (0.7, 1.2)
# Rounded lips leave a smaller hole: the opening shrinks by this share at full rounding.
ROUND_NARROWS_OPENING = 0.2
# A frame is pressed shut when a labial closure overlaps its audio span by at least this much.
PRESS_OVERLAP_S = 0.008
# Gaps in the (voiced-only) lip-shape track up to this long are bridged; longer ones relax to 0.
SHAPE_BRIDGE_S = 0.25
# Blinks: first one within this range, then intervals drawn from it (seconds); shape per frame.
BLINK_INTERVAL_S = (2.0, 5.5)
BLINK_SHAPE = (0.35, 0.85, 1.0, 0.75, 0.4, 0.12)
# Head sway amplitudes at motion_scale 1 (radians or fractions of the inter-ocular distance).
HEAD_YAW_RAD = 0.05
HEAD_PITCH_RAD = 0.035
HEAD_ROLL_RAD = 0.025
HEAD_SHIFT = 0.03
NOD_RAD = 0.03
BROW_RAISE = 1.0
# Time scale of the sway noise (Gaussian sigma, seconds): slow, like a presenter's idle motion.
SWAY_SIGMA_S = 0.6


@dataclass(frozen=True)
class Controls:
    """Per-frame controls, each an array of length `num_frames`.

    mouth: opening 0..~2 (1 = a loud open vowel at dynamic_scale 1); spread: -1 (round) .. 1
    (spread); press: 1 where the lips are shut and pressed ("m", "b", "p"), else 0; blink: 0
    (open) .. 1 (shut); brow: 0..1 raise; yaw/pitch/roll in radians (positive
    yaw turns the face to the image's right, positive pitch nods down, positive roll is
    clockwise on screen); shift_x/shift_y in inter-ocular distances.
    """

    mouth: np.ndarray
    spread: np.ndarray
    press: np.ndarray
    blink: np.ndarray
    brow: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.mouth)


@dataclass(frozen=True)
class AudioFeatures:
    """Per-frame features: loudness in dB and the energy share of the fricative band."""

    loudness_db: np.ndarray
    high_fraction: np.ndarray  # 2.5-8 kHz: fricatives ("s", "f", "sh")


def audio_features(samples: np.ndarray, sample_rate: int, num_frames: int, fps: float = FPS) -> AudioFeatures:
    """Loudness and fricative share of a Hann window centred `LOOKAHEAD_S` after each frame's middle.

    Computed in blocks of frames so memory stays small however long the audio is.
    """
    window = int(round(WINDOW_S * sample_rate))
    centres = ((np.arange(num_frames) + 0.5) / fps + LOOKAHEAD_S) * sample_rate
    starts = np.round(centres - window / 2).astype(np.int64)
    padded = np.concatenate(
        [np.zeros(window, np.float32), samples.astype(np.float32), np.zeros(2 * window, np.float32)]
    )
    starts = np.clip(starts + window, 0, len(padded) - window)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    taper = np.hanning(window).astype(np.float32)
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sample_rate)
    bands = {name: (freqs >= low) & (freqs < high) for name, (low, high) in BANDS_HZ.items()}
    columns = {name: np.empty(num_frames, np.float64) for name in ("rms", *BANDS_HZ)}
    for first in range(0, num_frames, FEATURE_BLOCK):
        block = slice(first, min(first + FEATURE_BLOCK, num_frames))
        frames = windows[starts[block]]
        spectrum = np.abs(np.fft.rfft(frames * taper, n=FFT_SIZE, axis=1)) ** 2
        for name, mask in bands.items():
            columns[name][block] = spectrum[:, mask].sum(axis=1)
        columns["rms"][block] = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    total = columns["total"] + 1e-12
    return AudioFeatures(
        loudness_db=(20 * np.log10(columns["rms"] + 1e-7)).astype(np.float32),
        high_fraction=(columns["high"] / total).astype(np.float32),
    )


def speech_gate(num_frames: int, segments: list[tuple[float, float]], fps: float = FPS) -> np.ndarray:
    """1 during speech and short pauses, 0 inside pauses >= `CLOSED_SILENCE_S`, with short ramps.

    Leading and trailing silence count as pauses. The ramps make the mouth close over
    `PAUSE_RAMP_S` after speech ends and begin opening that long before it starts.
    """
    times = (np.arange(num_frames) + 0.5) / fps
    gate = np.ones(num_frames, np.float32)
    duration = num_frames / fps
    bounds = [(0.0, 0.0)] + sorted(segments) + [(duration, duration)]
    for (_, previous_end), (next_start, _) in zip(bounds[:-1], bounds[1:], strict=False):
        if next_start - previous_end < CLOSED_SILENCE_S:
            continue
        # distance (s) into the pause from its nearer edge; the clip's own ends are hard edges
        into = np.full(num_frames, np.inf)
        if previous_end > 0:
            into = np.minimum(into, times - previous_end)
        if next_start < duration:
            into = np.minimum(into, next_start - times)
        inside = (times > previous_end) & (times < next_start)
        gate[inside] = np.minimum(gate[inside], np.clip(1.0 - into[inside] / PAUSE_RAMP_S, 0.0, 1.0))
    if not segments:
        gate[:] = 0.0
    return gate


def mouth_tracks(
    features: AudioFeatures, gate: np.ndarray, phonetics: articulation.Phonetics, fps: float = FPS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth opening (0..~1.25), lip spread (-1..1) and press (0/1) per frame, before dynamic_scale."""
    num_frames = len(gate)
    speech = gate > 0.5
    reference = features.loudness_db[speech] if speech.any() else features.loudness_db
    loud_level = float(np.percentile(reference, 95)) if reference.size else 0.0
    opening = np.clip((features.loudness_db - (loud_level - OPEN_RANGE_DB)) / OPEN_RANGE_DB, 0.0, 1.0)
    # Fricatives keep the teeth nearly together; the first formant says how far the jaw drops
    # on a vowel (consonants and silence keep the loudness alone).
    opening *= 1.0 - 0.55 * np.clip((features.high_fraction - 0.25) / 0.5, 0.0, 1.0)
    openness = _per_frame(phonetics, articulation.jaw_openness(phonetics), num_frames, fps)
    jaw = np.where(np.isfinite(openness), JAW_BY_F1[0] + (JAW_BY_F1[1] - JAW_BY_F1[0]) * np.nan_to_num(openness), 1.0)
    opening *= jaw
    opening = np.where(opening < CLOSED_BELOW, 0.0, opening)
    opening = _smooth(opening, sigma_frames=0.7) * gate
    # Lip shape: measured on voiced frames only; bridged across short consonants, smoothed so
    # shapes blend (and anticipate the next vowel a little, as lips do).
    rounding = _per_frame(phonetics, articulation.lip_rounding(phonetics), num_frames, fps)
    spread = _smooth(_bridge(rounding, int(round(SHAPE_BRIDGE_S * fps))), sigma_frames=1.2) * gate
    opening *= 1.0 - ROUND_NARROWS_OPENING * np.clip(-spread, 0.0, 1.0)  # pursed lips: a smaller hole
    press = _press_track(articulation.labial_closures(phonetics), num_frames, fps) * (gate > 0)
    opening *= 1.0 - press
    return opening.astype(np.float32), np.clip(spread, -1.0, 1.0).astype(np.float32), press.astype(np.float32)


def _frame_spans(num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (s) of the audio each frame shows: its own 1/fps, `LOOKAHEAD_S` ahead."""
    starts = np.arange(num_frames) / fps + LOOKAHEAD_S
    return starts, starts + 1.0 / fps


def _per_frame(phonetics: articulation.Phonetics, track: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Mean of a 10 ms track over each frame's analysis window (NaN where it has no values)."""
    centres = (np.arange(num_frames) + 0.5) / fps + LOOKAHEAD_S
    edges = np.searchsorted(phonetics.times, np.stack([centres - WINDOW_S / 2, centres + WINDOW_S / 2]))
    finite = np.isfinite(track)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, track, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    total = sums[edges[1]] - sums[edges[0]]
    count = counts[edges[1]] - counts[edges[0]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _bridge(values: np.ndarray, max_gap: int) -> np.ndarray:
    """NaN gaps up to `max_gap` long filled by linear interpolation; the rest (and the ends) 0."""
    values = np.asarray(values, np.float64)
    known = np.flatnonzero(np.isfinite(values))
    if known.size == 0:
        return np.zeros_like(values)
    filled = np.interp(np.arange(len(values)), known, values[known])
    gap_before = np.diff(np.concatenate([[-(10**9)], known]))  # distance from the previous known
    bridged = np.zeros(len(values), bool)
    for index, gap in zip(known, gap_before, strict=False):
        if 1 < gap <= max_gap + 1:
            bridged[index - gap + 1 : index] = True
    return np.where(np.isfinite(values), values, np.where(bridged, filled, 0.0))


def _press_track(closures: list[tuple[float, float]], num_frames: int, fps: float) -> np.ndarray:
    """1 for every frame whose audio span overlaps a lip closure (so even a 30 ms "p" shows)."""
    press = np.zeros(num_frames, np.float64)
    starts, ends = _frame_spans(num_frames, fps)
    for closure_start, closure_end in closures:
        overlap = np.minimum(ends, closure_end) - np.maximum(starts, closure_start)
        press[overlap >= min(PRESS_OVERLAP_S, closure_end - closure_start)] = 1.0
    return press


def speech_with_loud_frames(
    segments: list[tuple[float, float]], features: AudioFeatures, voiced: np.ndarray, fps: float = FPS
) -> list[tuple[float, float]]:
    """VAD segments, plus the stretches as loud as speech that are right next to one or voiced.

    The VAD can end a held vowel early, or miss a short isolated one ("oh!", a sung "oooo");
    `voiced` is each frame's voiced share (0..1). Loud unvoiced noise away from speech (a cough,
    a door) is left out.
    """
    num_frames = len(features.loudness_db)
    centres = (np.arange(num_frames) + 0.5) / fps
    inside = np.zeros(num_frames, bool)
    for start, end in segments:
        inside |= (centres >= start) & (centres <= end)
    reference = features.loudness_db[inside] if inside.any() else features.loudness_db
    if reference.size == 0:
        return list(segments)
    loud_level = float(np.percentile(reference, 95))
    loud = features.loudness_db > loud_level - LOUD_AS_SPEECH_DB
    extra = []
    for start, end in articulation.runs(loud & ~inside):
        next_to_speech = (start > 0 and inside[start - 1]) or (end < num_frames and inside[end])
        held_voice = end - start >= VOICED_RUN_FRAMES and float(np.mean(voiced[start:end])) >= 0.6
        if next_to_speech or held_voice:
            extra.append((start / fps, end / fps))
    return sorted(list(segments) + extra)


def blink_track(num_frames: int, rng: np.random.Generator, fps: float = FPS) -> np.ndarray:
    """Blink closure per frame: a ~240 ms blink every 2-5.5 s (both eyes together)."""
    blink = np.zeros(num_frames, np.float32)
    low, high = BLINK_INTERVAL_S
    time_s = rng.uniform(0.5, low)
    shape = np.asarray(BLINK_SHAPE, np.float32)
    while True:
        start = int(round(time_s * fps))
        if start >= num_frames:
            break
        end = min(num_frames, start + len(shape))
        blink[start:end] = np.maximum(blink[start:end], shape[: end - start])
        time_s += rng.uniform(low, high)
    return blink


def build_controls(
    samples: np.ndarray,
    sample_rate: int,
    num_frames: int,
    segments: list[tuple[float, float]],
    *,
    dynamic_scale: float = 1.0,
    motion_scale: float = 1.0,
    seed: int = 42,
) -> Controls:
    """All control tracks of one video (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    features = audio_features(samples, sample_rate, num_frames)
    phonetics = articulation.analyse(samples, sample_rate)
    voiced = np.nan_to_num(_per_frame(phonetics, phonetics.voiced.astype(np.float64), num_frames, FPS))
    gate = speech_gate(num_frames, speech_with_loud_frames(segments, features, voiced))
    opening, spread, press = mouth_tracks(features, gate, phonetics)
    # Stressed syllables: loudness well above its local (1 s) average drives nods and brows.
    emphasis = np.clip(opening - _smooth(opening, sigma_frames=12.0) - 0.15, 0.0, None)
    emphasis = _smooth(emphasis, sigma_frames=3.0)
    emphasis /= max(float(emphasis.max()), 1e-6) if emphasis.max() > 0.25 else 0.25

    sway = [_unit_noise(num_frames, rng) for _ in range(5)]
    yaw = HEAD_YAW_RAD * sway[0]
    pitch = HEAD_PITCH_RAD * sway[1] + NOD_RAD * emphasis
    roll = HEAD_ROLL_RAD * sway[2]
    shift_x = HEAD_SHIFT * sway[3]
    shift_y = HEAD_SHIFT * 0.5 * sway[4]
    brow = BROW_RAISE * emphasis
    blink = blink_track(num_frames, rng)
    return Controls(
        mouth=(_soft_limit(opening * dynamic_scale, 1.6)).astype(np.float32),
        spread=np.clip(spread * min(dynamic_scale, 1.5), -1.0, 1.0).astype(np.float32),
        press=press,
        blink=blink,
        brow=(brow * motion_scale).astype(np.float32),
        yaw=(yaw * motion_scale).astype(np.float32),
        pitch=(pitch * motion_scale).astype(np.float32),
        roll=(roll * motion_scale).astype(np.float32),
        shift_x=(shift_x * motion_scale).astype(np.float32),
        shift_y=(shift_y * motion_scale).astype(np.float32),
    )


def _unit_noise(num_frames: int, rng: np.random.Generator, sigma_s: float = SWAY_SIGMA_S) -> np.ndarray:
    """Smooth noise with unit standard deviation (white noise through a Gaussian filter).

    Drawn over a fixed margin on both sides so the start of the track is as smooth as its middle.
    """
    sigma = sigma_s * FPS
    margin = int(3 * sigma)
    noise = rng.standard_normal(num_frames + 2 * margin)
    smooth = _smooth(noise, sigma)[margin : margin + num_frames]
    # normalise by the filter's theoretical gain, not the sample std: short clips keep a
    # natural amplitude and the value does not depend on the clip length
    gain = 1.0 / np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    return (smooth / gain).astype(np.float32)


def _smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing with edge values held (no lag: the clip is known in full)."""
    if sigma_frames <= 0 or len(values) == 0:
        return np.asarray(values, np.float64)
    radius = max(1, int(np.ceil(3 * sigma_frames)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    taps /= taps.sum()
    padded = np.pad(np.asarray(values, np.float64), radius, mode="edge")
    return np.convolve(padded, taps, mode="valid")


def _soft_limit(values: np.ndarray, limit: float) -> np.ndarray:
    """Identity for small values, approaching `limit` smoothly (keeps wide openings plausible)."""
    knee = 0.6 * limit
    over = np.maximum(values - knee, 0.0)
    room = limit - knee
    return np.minimum(values, knee) + room * np.tanh(over / room)
