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
    `correlation` is NaN when there was too little speech to measure.
    """

    offset_frames: int
    correlation: float
    confident: bool
    mouth_opening: np.ndarray
    envelope: np.ndarray
    speech_mask: np.ndarray
    fps: float = float(FPS)
    correlation_by_lag: dict[int, float] = field(default_factory=dict)

    @property
    def offset_ms(self) -> float:
        return self.offset_frames * 1000.0 / self.fps


# Below this many speech frames (1 s) a correlation says little.
MIN_SPEECH_FRAMES_FOR_SYNC = 25
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
    max_lag_frames: int = 8,
    min_correlation: float = 0.3,
    fps: float = float(FPS),
) -> SyncMeasurement:
    """Best lag of mouth opening against the envelope, by Pearson correlation over speech frames.

    For each lag L in [-max_lag_frames, max_lag_frames], pairs mouth[t + L] with envelope[t]
    for speech frames t (positive L = picture late). Ties go to the smaller |L|. `confident`
    means the correlation is at least `min_correlation` over at least 25 speech frames.
    """
    mouth = np.asarray(mouth_opening, np.float64)
    env = np.asarray(envelope, np.float64)
    mask = np.asarray(speech_mask, bool)
    count = min(len(mouth), len(env), len(mask))
    mouth, env, mask = mouth[:count], env[:count], mask[:count]
    by_lag: dict[int, float] = {}
    for lag in range(-max_lag_frames, max_lag_frames + 1):
        by_lag[lag] = _lagged_correlation(mouth, env, mask, lag)
    finite = {lag: c for lag, c in by_lag.items() if math.isfinite(c)}
    if not finite:
        return SyncMeasurement(0, float("nan"), False, mouth, env.astype(np.float32), mask, fps, by_lag)
    best = max(finite, key=lambda lag: (round(finite[lag], 9), -abs(lag)))
    correlation = finite[best]
    confident = correlation >= min_correlation and int(mask.sum()) >= MIN_SPEECH_FRAMES_FOR_SYNC
    return SyncMeasurement(best, float(correlation), bool(confident), mouth, env.astype(np.float32), mask, fps, by_lag)


def _lagged_correlation(mouth: np.ndarray, env: np.ndarray, mask: np.ndarray, lag: int) -> float:
    """Pearson correlation of mouth[t + lag] with env[t] over speech frames t where both exist."""
    t = np.flatnonzero(mask)
    t = t[(t + lag >= 0) & (t + lag < len(mouth))]
    m, e = mouth[t + lag], env[t]
    valid = np.isfinite(m) & np.isfinite(e)
    m, e = m[valid], e[valid]
    if len(m) < MIN_SPEECH_FRAMES_FOR_SYNC // 2:
        return float("nan")
    m, e = m - m.mean(), e - e.mean()
    denominator = math.sqrt(float(m @ m) * float(e @ e))
    return float(m @ e) / denominator if denominator > 1e-12 else float("nan")


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
    max_lag_frames: int = 8,
    min_correlation: float = 0.3,
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
