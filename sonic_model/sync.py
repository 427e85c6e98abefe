"""The audio-visual offset of a talking head: mouth opening against the speech envelope.

Used by QA (`sonic_model.qa.checks`) and by lip-sync calibration (`sonic_model.postprocess.lipsync`),
so both measure the same way and the render path does not depend on QA.

Sync sign convention, used everywhere here (and by lip-sync calibration):
    offset_frames > 0  -> the picture is LATE: the mouth moves `offset_frames` frames after the
                          sound it belongs to (mouth[t + offset] matches audio[t]).
    offset_frames < 0  -> the picture is early.
To cancel an offset of +k, show each frame k frames earlier (or delay the audio by k frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic_model.audio import AudioClip, frame_envelope, speech_segments
from sonic_model.encode import FPS
from sonic_model.errors import InputError, SonicCatalogError


@dataclass(frozen=True)
class SyncMeasurement:
    """Mouth opening against the audio envelope, per video frame (sign: see module docstring).

    `mouth_opening` is NaN where no face was found; `speech_mask` marks frames inside speech.
    `correlation_by_lag` is the whole lag curve (Pearson correlation over every speech frame with
    a face, NaN where a lag has too few pairs); `offset_frames` is its peak and `correlation`
    the value there. `confident` says the peak can be trusted (enough speech, a peak that stands
    out of the curve: see `estimate_av_offset`); when it is not, `unmeasured_reason` says why and
    neither QA's offset check nor calibration acts on the offset.
    """

    offset_frames: int
    correlation: float
    confident: bool
    mouth_opening: np.ndarray
    envelope: np.ndarray
    speech_mask: np.ndarray
    fps: float = float(FPS)
    correlation_by_lag: dict[int, float] = field(default_factory=dict)
    # Seconds of speech with a face found (the frames the curve is computed over).
    speech_s: float = 0.0
    # The lag curve's noise: the standard deviation its values would have if the mouth did not
    # follow this sound at all (Bartlett's formula from the two series' autocorrelations over
    # the speech frames: it shrinks as 1/sqrt(speech frames)).
    noise: float = float("nan")
    # SyncNet-style confidence: the peak minus the median of the lag curve, in units of `noise`.
    confidence: float = float("nan")
    # The peak minus the highest other local peak at least `PEAK_GUARD_FRAMES` away (the median
    # when there is none), in units of `noise`: small when two lags fit about equally well.
    peak_margin: float = float("nan")
    correlation_at_zero: float = float("nan")
    # Spread (standard deviation) of the mouth opening over speech frames: ~0 for a still mouth.
    mouth_motion: float = float("nan")
    unmeasured_reason: str = ""
    # The whole clip's lag curve: the mouth against the sound's speech level in dB (silence
    # outside speech) over every frame with a face, pauses included (see
    # `whole_clip_correlation`). A mouth that rests in this sound's pauses and moves in its
    # speech scores high; a mouth made for another sound moves in this one's pauses.
    whole_clip_correlation_by_lag: dict[int, float] = field(default_factory=dict)

    @property
    def offset_ms(self) -> float:
        return self.offset_frames * 1000.0 / self.fps

    @property
    def offset_subframe(self) -> float:
        """The peak's lag to a fraction of a frame: a parabola through the peak and its two
        neighbours on the lag curve (the integer peak where a neighbour is missing or the three do
        not bend down). The integer peak rounds a 2.5-frame offset (100 ms) to 2, inside a
        2-frame tolerance; this does not (the sync study: sounds shifted by 3 frames on a preview
        that runs half a frame early measured 2.3-2.75, good renders -0.9..0)."""
        lag = self.offset_frames
        before = self.correlation_by_lag.get(lag - 1, float("nan"))
        at = self.correlation_by_lag.get(lag, float("nan"))
        after = self.correlation_by_lag.get(lag + 1, float("nan"))
        bend = before - 2.0 * at + after
        if not (math.isfinite(bend) and bend < 0):
            return float(lag)
        return lag + float(np.clip(0.5 * (before - after) / bend, -0.5, 0.5))

    @property
    def measured(self) -> bool:
        """The offset was measured with confidence (not "sync unmeasured")."""
        return self.confident

    def correlation_within(self, max_abs_lag: int) -> float:
        """The best correlation of the lag curve within ±`max_abs_lag` frames (NaN if none)."""
        return _best_within(self.correlation_by_lag, max_abs_lag)

    def whole_clip_correlation_within(self, max_abs_lag: int) -> float:
        """The best whole-clip correlation (speech and pauses) within ±`max_abs_lag` frames (NaN if none)."""
        return _best_within(self.whole_clip_correlation_by_lag, max_abs_lag)

    def whole_clip_prominence_within(self, max_abs_lag: int) -> float:
        """How far the best whole-clip correlation within ±`max_abs_lag` stands above the whole-clip
        curve's median over every lag searched (NaN if none): SyncNet's "peak over the median", on
        the whole-clip curve. A mouth made for this sound peaks near lag 0 and falls away from it,
        even where the peak is low (a continuous human sentence: few pauses to rest in); another
        sound's curve is about as high at every lag (the sync study, docs/qa-sync.md)."""
        values = [c for c in self.whole_clip_correlation_by_lag.values() if math.isfinite(c)]
        if not values:
            return float("nan")
        return self.whole_clip_correlation_within(max_abs_lag) - float(np.median(values))

    def whole_clip_figures(self, max_abs_lag: int) -> dict[str, float | str]:
        """The whole-clip figures QA keeps, at the tolerance it judges them with (rounded, JSON-able)."""
        return {
            "sync_whole_clip_correlation": _rounded(self.whole_clip_correlation_within(max_abs_lag)),
            "sync_whole_clip_prominence": _rounded(self.whole_clip_prominence_within(max_abs_lag)),
        }

    def figures(self) -> dict[str, float | int | str]:
        """The figures a sidecar, a ledger and a report keep (rounded, JSON-able)."""
        return {
            "sync_status": "measured" if self.confident else "unmeasured",
            "sync_unmeasured_reason": self.unmeasured_reason,
            "av_offset_frames": self.offset_frames,
            "av_offset_ms": round(self.offset_ms, 1),
            "av_offset_subframe": round(self.offset_subframe, 2) if math.isfinite(self.offset_subframe) else "n/a",
            "sync_correlation": _rounded(self.correlation),
            "sync_correlation_at_zero": _rounded(self.correlation_at_zero),
            "sync_noise": _rounded(self.noise),
            "sync_confidence": _rounded(self.confidence),
            "sync_peak_margin": _rounded(self.peak_margin),
            "sync_speech_s": round(self.speech_s, 2),
            "sync_mouth_motion": _rounded(self.mouth_motion),
            "sync_whole_clip_correlation_at_zero": _rounded(self.whole_clip_correlation_by_lag.get(0, float("nan"))),
            "sync_confident": "yes" if self.confident else "no",
        }


def _best_within(curve: dict[int, float], max_abs_lag: int) -> float:
    """The highest finite value of a lag curve within ±`max_abs_lag` frames (NaN if none)."""
    values = [c for lag, c in curve.items() if abs(lag) <= max_abs_lag and math.isfinite(c)]
    return max(values) if values else float("nan")


def _rounded(value: float) -> float | str:
    return round(float(value), 4) if math.isfinite(value) else "n/a"


# How the lag curve is searched and when its peak is trusted. The values are set by the study
# (benchmarks/sync_study.py, docs/qa-sync.md) and QA's `QAThresholds` defaults to them.
# Lags searched either way (±15 frames = ±600 ms, SyncNet's window): wide enough that a 12-frame
# error is a peak inside the curve, not its edge.
SYNC_SEARCH_FRAMES = 15
# Below this much speech (seconds of speech frames with a face) the curve's peak is not trusted.
MIN_SYNC_SPEECH_S = 2.0
# The peak must stand this many noise units above the curve's median (SyncNet's confidence) ...
MIN_SYNC_CONFIDENCE = 2.0
# ... and this many above any other local peak at least `PEAK_GUARD_FRAMES` from it.
MIN_SYNC_PEAK_MARGIN = 0.5
# Lags of the autocorrelations summed in the noise estimate (0.6 s: the series' memory).
NOISE_MAX_LAG_FRAMES = 15
PEAK_GUARD_FRAMES = 3
# Fewest frame pairs a lag's correlation is computed over.
MIN_PAIRS_PER_LAG = 8
# Kept for older callers: the speech frames of the old fixed rule (1 s at 25 fps).
MIN_SPEECH_FRAMES_FOR_SYNC = 25
# The whole-clip correlation's level floor (RMS, full scale 1): -60 dBFS, some 35 dB under speech
# at the reference level below; pauses are set to it (see `whole_clip_correlation`).
WHOLE_CLIP_LEVEL_FLOOR = 1e-3
# The loudness a file's sound is brought to before its speech frames are found (see `at_reference_level`).
SYNC_REFERENCE_LUFS = -23.0
# ... by at most this much either way (a near-silent track is not raised into a noise floor made speech).
SYNC_REFERENCE_MAX_GAIN_DB = 40.0


def at_reference_level(clip: AudioClip) -> AudioClip:
    """`clip` scaled to `SYNC_REFERENCE_LUFS` (BS.1770 integrated), so the sync figures do not depend on its level.

    The Pearson correlation of mouth against envelope is blind to a gain already, but the speech
    frames it is taken over come from the VAD, whose probabilities move with the level: the same
    render normalised to -14 LUFS and left at its -20 LUFS script level marked different frames as
    speech. Measured at one level, a louder or quieter copy of a video gets the same figures.
    Silence (no measurable loudness) is returned as it is.
    """
    from sonic_model.loudness import integrated_loudness

    loudness = integrated_loudness(clip.samples, clip.sample_rate)
    if not math.isfinite(loudness):
        return clip
    gain_db = float(np.clip(SYNC_REFERENCE_LUFS - loudness, -SYNC_REFERENCE_MAX_GAIN_DB, SYNC_REFERENCE_MAX_GAIN_DB))
    samples = (clip.samples * np.float32(10 ** (gain_db / 20))).astype(np.float32)
    return AudioClip(samples, clip.sample_rate, clip.source_sample_rate, clip.source_channels)


def estimate_av_offset(
    mouth_opening: np.ndarray,
    envelope: np.ndarray,
    speech_mask: np.ndarray,
    *,
    max_lag_frames: int = SYNC_SEARCH_FRAMES,
    min_correlation: float = 0.0,
    min_speech_s: float = MIN_SYNC_SPEECH_S,
    min_confidence: float = MIN_SYNC_CONFIDENCE,
    min_peak_margin: float = MIN_SYNC_PEAK_MARGIN,
    fps: float = float(FPS),
) -> SyncMeasurement:
    """The lag curve of mouth opening against the envelope over all speech frames, its peak and
    whether the peak can be trusted.

    For each lag L in [-max_lag_frames, max_lag_frames], pairs mouth[t + L] with envelope[t]
    for speech frames t (positive L = picture late). The peak is the best lag (ties go to the
    smaller |L|). It is `confident` when there are at least `min_speech_s` seconds of speech
    with a face, the peak stands `min_confidence` above the curve's median (SyncNet's
    confidence), `min_peak_margin` above any other local peak `PEAK_GUARD_FRAMES` or more away,
    and reaches `min_correlation`. Otherwise `unmeasured_reason` says which of these failed.
    """
    mouth = np.asarray(mouth_opening, np.float64)
    env = np.asarray(envelope, np.float64)
    mask = np.asarray(speech_mask, bool)
    count = min(len(mouth), len(env), len(mask))
    mouth, env, mask = mouth[:count], env[:count], mask[:count]
    by_lag = {lag: _lagged_correlation(mouth, env, mask, lag) for lag in range(-max_lag_frames, max_lag_frames + 1)}
    whole_clip = whole_clip_correlation(mouth, env, mask, max_lag_frames)
    speaking = mask & np.isfinite(mouth)
    speech_s = float(speaking.sum()) / fps
    motion = float(np.std(mouth[speaking])) if speaking.sum() >= 2 else float("nan")
    finite = {lag: c for lag, c in by_lag.items() if math.isfinite(c)}
    common = dict(
        mouth_opening=mouth,
        envelope=env.astype(np.float32),
        speech_mask=mask,
        fps=fps,
        correlation_by_lag=by_lag,
        speech_s=speech_s,
        mouth_motion=motion,
        correlation_at_zero=by_lag.get(0, float("nan")),
        whole_clip_correlation_by_lag=whole_clip,
    )
    if not finite:
        reason = _too_little_speech(speech_s, min_speech_s) or "the mouth does not move during speech"
        return SyncMeasurement(0, float("nan"), False, unmeasured_reason=reason, **common)
    best = max(finite, key=lambda lag: (round(finite[lag], 9), -abs(lag)))
    peak = finite[best]
    values = np.array(list(finite.values()))
    noise = lag_curve_noise(mouth, env, speaking)
    unit = noise if math.isfinite(noise) and noise > 0 else float("nan")
    confidence = (peak - float(np.median(values))) / unit
    others = [c for lag, c in finite.items() if abs(lag - best) >= PEAK_GUARD_FRAMES and _is_local_peak(finite, lag)]
    margin = (peak - (max(others) if others else float(np.median(values)))) / unit
    reason = _too_little_speech(speech_s, min_speech_s)
    if not reason and len(finite) < len(by_lag) // 2:
        reason = f"the face was found on too few speech frames to search ±{max_lag_frames} frames"
    if not reason and not math.isfinite(confidence):
        reason = "the mouth or the sound does not vary during speech"
    if not reason and confidence < min_confidence:
        reason = f"no clear peak in the lag curve (confidence {confidence:.1f}, need {min_confidence:g})"
    if not reason and margin < min_peak_margin:
        reason = f"two lags fit about as well (peak margin {margin:.1f}, need {min_peak_margin:g})"
    if not reason and peak < min_correlation:
        reason = f"weak correlation at the peak ({peak:.2f}, need {min_correlation:g})"
    return SyncMeasurement(
        best,
        float(peak),
        not reason,
        noise=noise,
        confidence=confidence,
        peak_margin=margin,
        unmeasured_reason=reason,
        **common,
    )


def whole_clip_correlation(
    mouth: np.ndarray, envelope: np.ndarray, speech_mask: np.ndarray, max_lag_frames: int = SYNC_SEARCH_FRAMES
) -> dict[int, float]:
    """The lag curve of the mouth against the sound's speech level in dB over every frame with a face.

    The speech-only curve (`estimate_av_offset`) asks whether the mouth's movements during speech
    follow the sound's; it cannot see pauses, and over a few seconds of speech two unrelated
    talking series correlate by chance nearly as much as a weak true pair (the sync study:
    another row's sound reached 0.40 within ±2 frames, a good render fell to 0.32). Whether the
    mouth rests when this sound pauses and moves when it speaks is the other half of lip sync,
    and another row's sound pauses elsewhere. Each frame's level is its RMS in dB, floored at
    `WHOLE_CLIP_LEVEL_FLOOR` (a mouth opens for soft syllables as well as loud vowels; the raw
    RMS is dominated by the loudest); frames outside speech get the floor (silence: noise or
    music in a pause is not speech). Every frame with a face is paired; positive lag = picture
    late, as everywhere here.
    """
    mouth = np.asarray(mouth, np.float64)
    envelope = np.asarray(envelope, np.float64)
    level = 20.0 * np.log10(np.maximum(np.nan_to_num(envelope, nan=0.0), WHOLE_CLIP_LEVEL_FLOOR))
    level = np.where(np.asarray(speech_mask, bool)[: len(level)], level, 20.0 * np.log10(WHOLE_CLIP_LEVEL_FLOOR))
    every = np.ones(len(level), bool)
    return {lag: _lagged_correlation(mouth, level, every, lag) for lag in range(-max_lag_frames, max_lag_frames + 1)}


def lag_curve_noise(mouth: np.ndarray, envelope: np.ndarray, frames: np.ndarray) -> float:
    """Standard deviation of the correlation of two unrelated series like these (Bartlett).

    sigma^2 = (1 + 2 * sum_k r_mouth(k) * r_env(k)) / n over the `frames` (speech frames with a
    face, taken in order), k = 1..`NOISE_MAX_LAG_FRAMES`: two smooth series correlate by chance
    far more than two white ones, and less the more frames there are.
    """
    t = np.flatnonzero(frames)
    if len(t) < MIN_PAIRS_PER_LAG:
        return float("nan")
    m = _autocorrelation(np.asarray(mouth, np.float64)[t], NOISE_MAX_LAG_FRAMES)
    e = _autocorrelation(np.asarray(envelope, np.float64)[t], NOISE_MAX_LAG_FRAMES)
    if m is None or e is None:
        return float("nan")
    return math.sqrt(max(1.0, 1.0 + 2.0 * float(m[1:] @ e[1:])) / len(t))


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray | None:
    x = x - x.mean()
    power = float(x @ x)
    if power <= 1e-12:
        return None
    return np.array([float(x[: len(x) - k] @ x[k:]) / power if k < len(x) else 0.0 for k in range(max_lag + 1)])


def _too_little_speech(speech_s: float, min_speech_s: float) -> str:
    if speech_s < min_speech_s:
        return f"too little speech to measure: {speech_s:.1f} s with a face (need {min_speech_s:g} s)"
    return ""


def _is_local_peak(curve: dict[int, float], lag: int) -> bool:
    return all(curve.get(n, -math.inf) <= curve[lag] for n in (lag - 1, lag + 1))


def _lagged_correlation(mouth: np.ndarray, env: np.ndarray, mask: np.ndarray, lag: int) -> float:
    """Pearson correlation of mouth[t + lag] with env[t] over speech frames t where both exist."""
    t = np.flatnonzero(mask)
    t = t[(t + lag >= 0) & (t + lag < len(mouth))]
    m, e = mouth[t + lag], env[t]
    valid = np.isfinite(m) & np.isfinite(e)
    m, e = m[valid], e[valid]
    if len(m) < MIN_PAIRS_PER_LAG:
        return float("nan")
    m, e = m - m.mean(), e - e.mean()
    denominator = math.sqrt(float(m @ m) * float(e @ e))
    return float(m @ e) / denominator if denominator > 1e-12 else float("nan")


# Calibration's test: the peak must beat lag 0 by this many standard errors of the difference.
SHIFT_Z = 3.0
# Block bootstrap of that difference: resampled blocks of speech frames (0.4 s), this many times.
BOOTSTRAP_BLOCK_FRAMES = 10
BOOTSTRAP_ROUNDS = 200


@dataclass(frozen=True)
class ShiftTest:
    """Is the measured offset significantly better than no offset? (calibration's test)"""

    offset_frames: int
    gain: float  # correlation at the offset minus at lag 0
    standard_error: float  # of that difference, by a block bootstrap over speech frames
    z: float  # the multiple of `standard_error` the gain had to reach
    significant: bool

    def as_dict(self) -> dict:
        return {
            "offset_frames": self.offset_frames,
            "gain": _rounded(self.gain),
            "standard_error": _rounded(self.standard_error),
            "z": self.z,
            "significant": self.significant,
        }


def offset_beats_zero(measurement: SyncMeasurement, *, z: float = SHIFT_Z, seed: int = 0) -> ShiftTest:
    """Test the peak's correlation against lag 0's on the same speech frames.

    gain = c(offset) - c(0); its standard error comes from a block bootstrap (blocks of
    `BOOTSTRAP_BLOCK_FRAMES` speech frames resampled with replacement, so the frames' own
    autocorrelation is kept: that is the noise of the lag curve at this much speech). The
    offset is significant when the estimate is confident, not 0, and gain > z * standard error.
    """
    lag = measurement.offset_frames
    if not measurement.confident or lag == 0:
        return ShiftTest(lag, 0.0 if lag == 0 else float("nan"), float("nan"), z, False)
    mouth = np.asarray(measurement.mouth_opening, np.float64)
    env = np.asarray(measurement.envelope, np.float64)
    t = np.flatnonzero(measurement.speech_mask)
    t = t[(t + lag >= 0) & (t + lag < len(mouth)) & (t < len(mouth))]
    t = t[np.isfinite(mouth[t]) & np.isfinite(mouth[t + lag]) & np.isfinite(env[t])]
    if len(t) < 2 * BOOTSTRAP_BLOCK_FRAMES:
        return ShiftTest(lag, float("nan"), float("nan"), z, False)
    at_lag, at_zero, e = mouth[t + lag], mouth[t], env[t]
    gain = _pearson(at_lag, e) - _pearson(at_zero, e)
    rng = np.random.default_rng(seed)
    blocks = max(1, len(t) // BOOTSTRAP_BLOCK_FRAMES)
    starts = rng.integers(0, len(t) - BOOTSTRAP_BLOCK_FRAMES + 1, size=(BOOTSTRAP_ROUNDS, blocks))
    index = (starts[:, :, None] + np.arange(BOOTSTRAP_BLOCK_FRAMES)).reshape(BOOTSTRAP_ROUNDS, -1)
    gains = _pearson_rows(at_lag[index], e[index]) - _pearson_rows(at_zero[index], e[index])
    gains = gains[np.isfinite(gains)]
    se = float(np.std(gains)) if len(gains) > 10 else float("nan")
    significant = bool(math.isfinite(se) and gain > z * se)
    return ShiftTest(lag, float(gain), se, z, significant)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(_pearson_rows(a[None], b[None])[0])


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-12, (a * b).sum(axis=1) / denominator, np.nan)


def speech_mask_for_frames(segments: list[tuple[float, float]], num_frames: int, fps: float = float(FPS)) -> np.ndarray:
    """True for frames whose centre time falls inside a speech segment."""
    centres = (np.arange(num_frames) + 0.5) / fps
    mask = np.zeros(num_frames, bool)
    for start, end in segments:
        mask |= (centres >= start) & (centres < end)
    return mask


def measure_av_sync(
    video_path: str | Path,
    audio: AudioClip | None = None,
    *,
    frame_step: int = 1,
    max_lag_frames: int = SYNC_SEARCH_FRAMES,
    min_correlation: float = 0.0,
) -> SyncMeasurement:
    """Audio-visual offset of a talking-head video (positive = picture late, in frames).

    `audio` is the sound to measure against; None means the video's own audio track (what a
    viewer hears; use that to re-time any existing video). It is measured at a reference level
    (`at_reference_level`): a louder or quieter copy of the same video gets the same figures.
    With `frame_step` > 1 landmarks are found on every n-th frame only and linearly
    interpolated between (faster, coarser).
    Raises `InputError` when the video cannot be read or has no audio to measure against.
    """
    from sonic_model.video_reader import iter_rgb_and_luma_frames, probe_video

    info = probe_video(video_path)
    fps = info.fps or float(FPS)
    if audio is None:
        audio = _load_track_or_raise(video_path)
    audio = at_reference_level(audio)
    tracker = _new_tracker()
    mouth = np.full(info.num_frames, np.nan)
    import av

    try:
        for index, rgb, _luma in iter_rgb_and_luma_frames(video_path):
            if index % max(1, frame_step):
                continue
            if index >= len(mouth):
                mouth = np.concatenate([mouth, np.full(index + 1 - len(mouth), np.nan)])
            mouth[index] = _mouth_opening_or_nan(tracker, rgb)
    except (av.error.FFmpegError, OSError, EOFError) as exc:
        raise InputError(f"video cannot be decoded: {video_path} ({exc})") from None
    if frame_step > 1:
        mouth = interpolate_gaps(mouth, max_gap=frame_step)
    envelope = frame_envelope(audio, fps)
    mask = speech_mask_for_frames(speech_segments(audio), len(envelope), fps)
    return estimate_av_offset(
        mouth, envelope, mask, max_lag_frames=max_lag_frames, min_correlation=min_correlation, fps=fps
    )


def _load_track_or_raise(video_path: str | Path) -> AudioClip:
    from sonic_model.video_reader import audio_clip_on_picture_timeline

    try:
        return audio_clip_on_picture_timeline(video_path)
    except SonicCatalogError as exc:
        raise InputError(f"no audio to measure sync against in {video_path}: {exc}") from None


def interpolate_gaps(series: np.ndarray, *, max_gap: int) -> np.ndarray:
    """Fill NaN runs no longer than `max_gap` between finite values linearly."""
    known = np.flatnonzero(np.isfinite(series))
    if len(known) < 2:
        return series
    filled = series.copy()
    inside = np.arange(known[0], known[-1] + 1)
    filled[inside] = np.interp(inside, known, series[known])
    # Leave long gaps (a lost face) as NaN: inventing a mouth there would hide the problem.
    gaps = np.diff(known)
    for start, gap in zip(known[:-1], gaps, strict=False):
        if gap > max_gap:
            filled[start + 1 : start + gap] = np.nan
    return filled


def _new_tracker():
    from sonic_model.face import LandmarkTracker

    return LandmarkTracker()


def _mouth_opening_or_nan(tracker, rgb: np.ndarray) -> float:
    from sonic_model.face import mouth_opening

    landmarks = tracker(rgb)
    return float("nan") if landmarks is None else mouth_opening(landmarks)
