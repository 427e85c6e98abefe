"""Quality checks of a rendered talking-head video, and the audio-visual sync measurement.

`check_video` decodes the picture once, streaming (one frame in memory at a time), and gathers
everything per frame in that single pass: face mesh landmarks (tracked, so about one small mesh
inference per frame), mouth opening, mean luminance, a tiny grey thumbnail for frame-to-frame
change, and a few frames for the identity check. The audio track of the file is decoded
separately (cheap) for loudness, clipping and the sync envelope. It never raises for a bad
video: every problem becomes a specific line in `QAResult.failures`.

Sync sign convention, used everywhere here (and by lip-sync calibration):
    offset_frames > 0  -> the picture is LATE: the mouth moves `offset_frames` frames after the
                          sound it belongs to (mouth[t + offset] matches audio[t]).
    offset_frames < 0  -> the picture is early.
To cancel an offset of +k, show each frame k frames earlier (or delay the audio by k frames).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sonic_model.audio import SAMPLE_RATE, AudioClip, frame_envelope, resample, speech_segments
from sonic_model.encode import FPS
from sonic_model.errors import InputError, NoFaceError, SonicCatalogError

# --- thresholds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAThresholds:
    """What a video must satisfy to be published. Every default is documented by its comment.

    Change them per run with `QAThresholds().with_overrides({"min_sync_correlation": 0.2})`.
    """

    # Container: the catalog's delivery format (README "Every video is H.264 (yuv420p) + AAC at 25 fps").
    expected_video_codec: str = "h264"
    expected_pix_fmt: str = "yuv420p"
    expected_audio_codec: str = "aac"
    expected_fps: float = float(FPS)
    # Picture size: the short side must be at least this (the generators' smallest output is 256);
    # an exact size can be demanded with expected_width/expected_height (None = any).
    min_short_side: int = 256
    expected_width: int | None = None
    expected_height: int | None = None
    # Duration: the video must last as long as the script audio to within one frame (DESIGN.md 4.3).
    max_duration_mismatch_frames: float = 1.0
    # Sync: a viewer notices lips ~45 ms early or ~125 ms late (ITU-R BT.1359); 2 frames = 80 ms.
    max_abs_av_offset_frames: int = 2
    # Pearson correlation of mouth opening with the speech envelope at the best lag, over speech
    # frames. Real talking heads reach 0.4-0.8; a mouth that ignores the audio stays near 0.
    min_sync_correlation: float = 0.3
    # Search window for the best lag (±8 frames = ±320 ms, beyond any plausible generator delay).
    max_sync_search_frames: int = 8
    # Closed mouth in silence: in every pause of at least `min_silence_s`, the median mouth opening
    # (inner-lip gap / eye-corner distance) may exceed the portrait's own by at most this much.
    # Measured relative to the portrait because a smiling photo shows teeth at rest (~0.1).
    min_silence_s: float = 0.3
    max_silence_mouth_opening_excess: float = 0.06
    # Face present: fraction of sampled frames where the face mesh finds the face.
    min_face_present_ratio: float = 1.0
    # Every n-th frame gets landmarks (1 = all; the tracker costs ~1 ms per frame).
    landmark_frame_step: int = 1
    # Identity: dlib 128-d descriptor distance to the portrait (same person 0.1-0.2, different
    # people 0.7-0.9; 0.6 is dlib's own threshold). Measured on `identity_samples` spread frames.
    max_identity_distance: float = 0.6
    identity_samples: int = 3
    # Flicker: largest jump of mean luminance (0-255) between consecutive frames. A talking head
    # under fixed light changes by < 2; a visible flash is > 8.
    max_luma_jump: float = 8.0
    # Frozen: frames whose 64x64 grey thumbnails differ by less than `frozen_pixel_tolerance`
    # (0-255) everywhere are "the same frame" (H.264 re-codes a repeated frame with changes of
    # 1-3 levels; a moving mouth changes its thumbnail pixels by 10-150); during speech, runs
    # of them longer than this fail (12 frames = 0.48 s of a still picture while someone talks).
    frozen_pixel_tolerance: float = 4.0
    max_frozen_run_frames: int = 12
    # Jitter: RMS frame-to-frame acceleration of the head (mean of rigid landmarks: eye corners,
    # nose bridge and tip), in units of the eye-corner distance. Measured here: a still head whose
    # mouth talks reads ~0.012 (mesh noise); the same with a random 2 px (sd) shake per frame 0.058.
    max_head_jitter: float = 0.025
    # Black frames: mean luminance below `black_luma` (0-255); none allowed.
    black_luma: float = 16.0
    max_black_frames: int = 0
    # Audio: integrated loudness (ITU-R BS.1770 K-weighted, gated) of the track in the file.
    # Speech for the web is mastered around -16..-23 LUFS; outside -35..-8 it is broken or silent.
    min_loudness_lufs: float = -35.0
    max_loudness_lufs: float = -8.0
    # Samples at or above full scale (|x| >= 0.999): more than 0.1 % is audible distortion.
    max_clipping_ratio: float = 0.001

    def with_overrides(self, overrides: dict[str, Any] | None) -> "QAThresholds":
        """A copy with some values changed; unknown names or wrong types raise `InputError`."""
        if not overrides:
            return self
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise InputError(
                f"unknown QA threshold(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        converted = {name: _convert_threshold(name, value, getattr(self, name)) for name, value in overrides.items()}
        return dataclasses.replace(self, **converted)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert_threshold(name: str, value: Any, default: Any) -> Any:
    """Coerce an override to the default's type (CLI and manifests give strings and floats)."""
    if value is None:
        if name in ("expected_width", "expected_height"):
            return None
        raise InputError(f"QA threshold {name} cannot be empty")
    try:
        if isinstance(default, bool):
            raise TypeError
        if isinstance(default, str):
            return str(value)
        if isinstance(default, int) or name in ("expected_width", "expected_height"):
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError):
        kind = "a whole number" if isinstance(default, int) else "a number" if not isinstance(default, str) else "text"
        raise InputError(f"QA threshold {name} must be {kind}, got {value!r}") from None


# --- results ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class QAResult:
    """The verdict on one video. `figures` is flat and JSON-able (for the sidecar and ledger)."""

    passed: bool
    failures: list[str]
    figures: dict[str, float | int | str]
    mouth_series: list[float | None] = field(default_factory=list)
    envelope_series: list[float] = field(default_factory=list)
    speech_series: list[bool] = field(default_factory=list)
    fps: float = float(FPS)

    @property
    def reason(self) -> str:
        """All failures in one line, for a ledger's reason column ('' when passed)."""
        return "; ".join(self.failures)


# --- the sync measurement ---------------------------------------------------------------------

# Below this many speech frames (1 s) a correlation says little.
MIN_SPEECH_FRAMES_FOR_SYNC = 25


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
    viewer hears; use that to re-time any existing video). With `frame_step` > 1 landmarks are
    found on every n-th frame only and linearly interpolated between (faster, coarser).
    Raises `InputError` when the video cannot be read or has no audio to measure against.
    """
    from sonic_model.probe import probe_video

    info = probe_video(video_path)
    fps = info.fps or float(FPS)
    if audio is None:
        audio = _load_track_or_raise(video_path)
    tracker = _new_tracker()
    mouth = np.full(info.num_frames, np.nan)
    import av

    try:
        for index, rgb, _luma in _decode_frames(video_path):
            if index % max(1, frame_step):
                continue
            if index >= len(mouth):
                mouth = np.concatenate([mouth, np.full(index + 1 - len(mouth), np.nan)])
            mouth[index] = _mouth_opening_or_nan(tracker, rgb)
    except (av.error.FFmpegError, OSError, EOFError) as exc:
        raise InputError(f"video cannot be decoded: {video_path} ({exc})") from None
    if frame_step > 1:
        mouth = _interpolate_gaps(mouth, max_gap=frame_step)
    envelope = frame_envelope(audio, fps)
    mask = speech_mask_for_frames(speech_segments(audio), len(envelope), fps)
    return estimate_av_offset(mouth, envelope, mask, max_lag_frames=max_lag_frames, min_correlation=min_correlation, fps=fps)


def _load_track_or_raise(video_path: str | Path) -> AudioClip:
    from sonic_model.probe import audio_clip_on_picture_timeline

    try:
        return audio_clip_on_picture_timeline(video_path)
    except SonicCatalogError as exc:
        raise InputError(f"no audio to measure sync against in {video_path}: {exc}") from None


def _interpolate_gaps(series: np.ndarray, *, max_gap: int) -> np.ndarray:
    """Fill NaN runs no longer than `max_gap` between finite values linearly."""
    known = np.flatnonzero(np.isfinite(series))
    if len(known) < 2:
        return series
    filled = series.copy()
    inside = np.arange(known[0], known[-1] + 1)
    filled[inside] = np.interp(inside, known, series[known])
    # Leave long gaps (a lost face) as NaN: inventing a mouth there would hide the problem.
    gaps = np.diff(known)
    for start, gap in zip(known[:-1], gaps):
        if gap > max_gap:
            filled[start + 1:start + gap] = np.nan
    return filled


def _new_tracker():
    from sonic_model.face import LandmarkTracker

    return LandmarkTracker()


def _mouth_opening_or_nan(tracker, rgb: np.ndarray) -> float:
    from sonic_model.face import mouth_opening

    landmarks = tracker(rgb)
    return float("nan") if landmarks is None else mouth_opening(landmarks)


# --- one pass over the picture ----------------------------------------------------------------

THUMB_SIDE = 64


@dataclass
class _PictureStats:
    """What the single decode pass collects (small arrays only: no frames are kept)."""

    num_frames: int = 0
    mouth: list[float] = field(default_factory=list)
    face_sampled: int = 0
    face_found: int = 0
    luma: list[float] = field(default_factory=list)
    # max |thumbnail difference| to the previous frame (inf for the first frame)
    change: list[float] = field(default_factory=list)
    identity_distances: list[float] = field(default_factory=list)
    identity_misses: int = 0
    # head anchor (x, y) and eye-corner distance per frame, NaN without a face
    head: list[tuple[float, float, float]] = field(default_factory=list)


def _scan_picture(
    video_path: str | Path,
    expected_frames: int,
    thresholds: QAThresholds,
    portrait_descriptor: np.ndarray | None,
) -> _PictureStats:
    import cv2

    stats = _PictureStats()
    tracker = _new_tracker()
    step = max(1, thresholds.landmark_frame_step)
    identity_frames = _spread_indices(expected_frames, thresholds.identity_samples)
    previous_thumb: np.ndarray | None = None
    for index, rgb, luma_plane in _decode_frames(video_path):
        stats.luma.append(float(luma_plane.mean()))
        thumb = cv2.resize(luma_plane, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
        stats.change.append(math.inf if previous_thumb is None else float(np.abs(thumb - previous_thumb).max()))
        previous_thumb = thumb
        landmarks = None
        if index % step == 0:
            landmarks = tracker(rgb)
            stats.face_sampled += 1
            stats.face_found += landmarks is not None
        stats.mouth.append(_mouth_from(landmarks) if index % step == 0 else float("nan"))
        stats.head.append(head_anchor(landmarks) if landmarks is not None else (math.nan, math.nan, math.nan))
        if portrait_descriptor is not None and index in identity_frames:
            distance = _identity_distance_in_frame(rgb, landmarks, portrait_descriptor)
            if distance is None:
                stats.identity_misses += 1
            else:
                stats.identity_distances.append(distance)
        stats.num_frames += 1
    return stats


def _decode_frames(video_path: str | Path):
    """Yield (index, RGB uint8, luma uint8 0-255) per frame, decoding one frame at a time.

    For yuv420p (every video we make) the planes are taken raw and converted by OpenCV, about
    6x cheaper than PyAV's swscale RGB conversion (2.5 ms -> 0.4 ms per 512 px frame; the
    results differ by ~1 level). Luma is the Y plane mapped from video range (16-235) to 0-255.
    """
    import av
    import cv2

    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
                planes = frame.to_ndarray()  # [H * 3/2, W]: Y, then U and V quarter planes
                rgb = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
                luma = cv2.convertScaleAbs(planes[: frame.height], alpha=255.0 / 219.0, beta=-16 * 255.0 / 219.0)
            else:
                rgb = frame.to_ndarray(format="rgb24")
                luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            yield index, rgb, luma


def _mouth_from(landmarks: np.ndarray | None) -> float:
    from sonic_model.face import mouth_opening

    return float("nan") if landmarks is None else mouth_opening(landmarks)


# Landmarks that move with the skull but not with the mouth or the eyelids: outer and inner eye
# corners, nose bridge (168, 6) and nose tip.
HEAD_ANCHOR_POINTS = (33, 263, 133, 362, 168, 6, 1)


def head_anchor(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(x, y) of the head's rigid landmarks' mean, and the eye-corner distance (the unit)."""
    from sonic_model.face import interocular_distance

    x, y = landmarks[list(HEAD_ANCHOR_POINTS), :2].mean(axis=0)
    return float(x), float(y), interocular_distance(landmarks)


def head_jitter(anchors: np.ndarray) -> float:
    """RMS second difference of the head anchor over frames, per eye-corner distance.

    `anchors` is [frames, 3] of (x, y, eye-corner distance) from `head_anchor` (NaN rows for
    frames without a face). The second difference p[t+1] - 2 p[t] + p[t-1] ignores steady drift
    and slow turns and keeps frame-to-frame shake. NaN when fewer than 3 consecutive faces.
    """
    anchors = np.asarray(anchors, np.float64).reshape(-1, 3)
    if len(anchors) < 3:
        return float("nan")
    xy = anchors[:, :2]
    accel = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    valid = np.isfinite(accel).all(axis=1)
    unit = np.nanmedian(anchors[:, 2]) if np.isfinite(anchors[:, 2]).any() else math.nan
    if not valid.any() or not unit > 0:
        return float("nan")
    return float(np.sqrt(np.mean(np.sum(accel[valid] ** 2, axis=1))) / unit)


def _spread_indices(count: int, samples: int) -> set[int]:
    """`samples` frame indices spread evenly inside the video (away from the very ends)."""
    if count <= 0 or samples <= 0:
        return set()
    return {int(round((i + 0.5) * count / samples)) for i in range(samples)} & set(range(count))


# --- identity (dlib 128-d) ----------------------------------------------------------------------

_DLIB_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _dlib_models():
    """dlib's 5-point shape predictor and ResNet face descriptor from face_recognition_models.

    The files are located with `find_spec`, never by importing the package (its import needs
    pkg_resources and prints a deprecation warning).
    """
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SonicCatalogError("face_recognition_models is not installed: `pip install face_recognition_models==0.3.0`")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    return (
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def face_descriptor(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d identity descriptor of the face whose mesh landmarks are given.

    The dlib box is the square around the mesh's eyes-to-chin region, about the box dlib's own
    detector draws; the same rule is used for portrait and frames so distances compare like
    with like.
    """
    import dlib

    rect = _dlib_rect(landmarks, rgb.shape[1], rgb.shape[0])
    predictor, encoder = _dlib_models()
    with _DLIB_LOCK:  # dlib objects are not documented as thread-safe
        shape = predictor(np.ascontiguousarray(rgb), rect)
        descriptor = encoder.compute_face_descriptor(np.ascontiguousarray(rgb), shape)
    return np.asarray(descriptor, np.float64)


def _dlib_rect(landmarks: np.ndarray, width: int, height: int):
    import dlib

    from sonic_model.face import CHIN, LEFT_BROW, RIGHT_BROW

    xy = landmarks[:, :2]
    x0, x1 = float(xy[:, 0].min()), float(xy[:, 0].max())
    top = float(xy[list(RIGHT_BROW) + list(LEFT_BROW), 1].min())
    bottom = float(xy[CHIN, 1])
    side = max(x1 - x0, bottom - top)
    cx, cy = (x0 + x1) / 2, (top + bottom) / 2
    left, right = int(round(cx - side / 2)), int(round(cx + side / 2))
    upper, lower = int(round(cy - side / 2)), int(round(cy + side / 2))
    return dlib.rectangle(max(0, left), max(0, upper), min(width - 1, right), min(height - 1, lower))


def portrait_face(portrait_rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The portrait's identity descriptor and its mouth opening at rest (largest face).

    Cached by the image's content: a catalog renders many rows per presenter, and the dlib
    descriptor plus the face search cost ~0.2 s per portrait.
    """
    portrait_rgb = np.ascontiguousarray(portrait_rgb)
    key = (portrait_rgb.shape, hashlib.blake2b(portrait_rgb.data, digest_size=16).hexdigest())
    with _PORTRAIT_CACHE_LOCK:
        cached = _PORTRAIT_CACHE.get(key)
    if cached is not None:
        return cached[0].copy(), cached[1]
    from sonic_model.face import face_landmarks, mouth_opening

    landmarks = face_landmarks(portrait_rgb)
    reference = (face_descriptor(portrait_rgb, landmarks), mouth_opening(landmarks))
    with _PORTRAIT_CACHE_LOCK:
        _PORTRAIT_CACHE[key] = reference
        while len(_PORTRAIT_CACHE) > _PORTRAIT_CACHE_SIZE:
            _PORTRAIT_CACHE.pop(next(iter(_PORTRAIT_CACHE)))
    return reference[0].copy(), reference[1]


_PORTRAIT_CACHE: dict[tuple, tuple[np.ndarray, float]] = {}
_PORTRAIT_CACHE_LOCK = threading.Lock()
_PORTRAIT_CACHE_SIZE = 64


def clear_portrait_cache() -> None:
    """Forget cached portrait references (benchmarks use it to time the uncached case)."""
    with _PORTRAIT_CACHE_LOCK:
        _PORTRAIT_CACHE.clear()


def _identity_distance_in_frame(rgb: np.ndarray, landmarks: np.ndarray | None, reference: np.ndarray) -> float | None:
    if landmarks is None:
        from sonic_model.face import face_landmarks

        try:
            landmarks = face_landmarks(rgb)
        except NoFaceError:
            return None
    return float(np.linalg.norm(face_descriptor(rgb, landmarks) - reference))


# --- audio track --------------------------------------------------------------------------------


def decode_audio_track(video_path: str | Path) -> tuple[np.ndarray, int] | None:
    """The file's first audio track as float32 [samples, channels] at its own rate (None if absent).

    Decoded at the native rate and channel layout because clipping and loudness are properties
    of what is delivered, which a downmix or resampling would blur. Laid on the picture's
    timeline (`sonic_model.probe.audio_on_picture_timeline`): sample 0 plays with frame 0.
    """
    from sonic_model.probe import audio_on_picture_timeline

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


# --- the checks --------------------------------------------------------------------------------

# A JSON-able stand-in for "no sound at all" (JSON has no -inf).
SILENCE_LUFS = -120.0


def check_video(
    video_path: str | Path,
    portrait_rgb: np.ndarray,
    audio: AudioClip,
    thresholds: QAThresholds | dict[str, Any] | None = QAThresholds(),
) -> QAResult:
    """Run every QA check on a rendered video against its portrait and script audio.

    `thresholds` may also be a dict of overrides of the defaults (or None for the defaults).
    Never raises for a bad video (an unreadable file is one failure); raises only for a
    broken environment (missing face models) or unknown threshold names (`InputError`).
    Figures are rounded for the sidecar.
    """
    from sonic_model.probe import probe_video

    if not isinstance(thresholds, QAThresholds):
        thresholds = QAThresholds().with_overrides(thresholds)

    failures: list[str] = []
    figures: dict[str, float | int | str] = {}
    try:
        info = probe_video(video_path)
    except InputError as exc:
        return QAResult(False, [str(exc)], {"readable": "no"})

    fps = info.fps or float(FPS)
    _check_container(info, audio, thresholds, failures, figures)

    descriptor, rest_opening = _portrait_reference(portrait_rgb, failures)
    import av

    try:
        picture = _scan_picture(video_path, info.num_frames, thresholds, descriptor)
    except (av.error.FFmpegError, OSError, EOFError) as exc:  # a corrupt file, not a crash
        failures.append(f"video cannot be decoded to the end: {exc}")
        return QAResult(False, failures, figures)

    track = _safe_decode_track(video_path, failures)
    sound = _sync_reference(track, audio)
    envelope = frame_envelope(sound, fps)
    speech = speech_mask_for_frames(speech_segments(sound), len(envelope), fps)
    mouth = np.asarray(picture.mouth, np.float64)
    if thresholds.landmark_frame_step > 1:
        mouth = _interpolate_gaps(mouth, max_gap=thresholds.landmark_frame_step)
    sync = estimate_av_offset(
        mouth, envelope, speech,
        max_lag_frames=thresholds.max_sync_search_frames, min_correlation=thresholds.min_sync_correlation, fps=fps,
    )

    _check_sync(sync, thresholds, failures, figures)
    _check_silences(mouth, speech, rest_opening, fps, thresholds, failures, figures)
    _check_face_and_identity(picture, descriptor is not None, thresholds, failures, figures)
    _check_picture_stability(picture, speech, thresholds, failures, figures)
    _check_audio_track(track, thresholds, failures, figures)

    return QAResult(
        passed=not failures,
        failures=failures,
        figures=figures,
        mouth_series=[None if not math.isfinite(v) else round(float(v), 4) for v in mouth],
        envelope_series=[round(float(v), 5) for v in envelope],
        speech_series=[bool(v) for v in speech],
        fps=fps,
    )


def _check_container(info, audio: AudioClip, t: QAThresholds, failures: list[str], figures: dict) -> None:
    fps = info.fps or float(FPS)
    figures.update(
        video_codec=info.video_codec, pix_fmt=info.pix_fmt, audio_codec=info.audio_codec or "none",
        fps=round(fps, 3), width=info.width, height=info.height, num_frames=info.num_frames,
        video_duration_s=round(info.video_duration_s, 4), audio_duration_s=round(audio.duration_s, 4),
    )
    if info.video_codec != t.expected_video_codec:
        failures.append(f"video codec is {info.video_codec}, expected {t.expected_video_codec}")
    if info.pix_fmt != t.expected_pix_fmt:
        failures.append(f"pixel format is {info.pix_fmt}, expected {t.expected_pix_fmt}")
    if (info.audio_codec or "none") != t.expected_audio_codec:
        failures.append(f"audio codec is {info.audio_codec or 'none (no audio track)'}, expected {t.expected_audio_codec}")
    if abs(fps - t.expected_fps) > 0.01:
        failures.append(f"frame rate is {fps:.3f} fps, expected {t.expected_fps:g}")
    if min(info.width, info.height) < t.min_short_side:
        failures.append(f"picture is {info.width}x{info.height}, short side below the minimum {t.min_short_side} px")
    for name, actual, expected in (("width", info.width, t.expected_width), ("height", info.height, t.expected_height)):
        if expected is not None and actual != expected:
            failures.append(f"picture {name} is {actual} px, expected {expected}")
    mismatch = abs(info.video_duration_s - audio.duration_s) * fps
    figures["duration_mismatch_frames"] = round(mismatch, 3)
    if mismatch > t.max_duration_mismatch_frames:
        failures.append(
            f"video lasts {info.video_duration_s:.3f} s, audio {audio.duration_s:.3f} s: off by "
            f"{mismatch:.2f} frames (max {t.max_duration_mismatch_frames:g})"
        )
    if info.audio_duration_s is not None:
        track_mismatch = abs(info.audio_duration_s - audio.duration_s) * fps
        figures["track_duration_mismatch_frames"] = round(track_mismatch, 3)
        if track_mismatch > t.max_duration_mismatch_frames:
            failures.append(
                f"audio track lasts {info.audio_duration_s:.3f} s, script audio {audio.duration_s:.3f} s: off by "
                f"{track_mismatch:.2f} frames (max {t.max_duration_mismatch_frames:g})"
            )


def _portrait_reference(portrait_rgb: np.ndarray, failures: list[str]) -> tuple[np.ndarray | None, float]:
    try:
        return portrait_face(portrait_rgb)
    except NoFaceError as exc:
        failures.append(f"portrait has no usable face, identity not checked: {exc}")
        return None, 0.0


def _safe_decode_track(video_path: str | Path, failures: list[str]) -> tuple[np.ndarray, int] | None:
    try:
        track = decode_audio_track(video_path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of this file
        failures.append(f"audio track cannot be decoded: {exc}")
        return None
    return track


def _sync_reference(track: tuple[np.ndarray, int] | None, audio: AudioClip) -> AudioClip:
    """Sync is measured against what the viewer hears: the file's own track, else the script."""
    if track is None or len(track[0]) == 0:
        return audio
    samples, rate = track
    mono = resample(samples.mean(axis=1).astype(np.float32), rate, SAMPLE_RATE)
    return AudioClip(np.clip(mono, -1.0, 1.0), SAMPLE_RATE, rate, samples.shape[1])


def _check_sync(sync: SyncMeasurement, t: QAThresholds, failures: list[str], figures: dict) -> None:
    speech_frames = int(sync.speech_mask.sum())
    figures["speech_frames"] = speech_frames
    figures["av_offset_frames"] = sync.offset_frames
    figures["av_offset_ms"] = round(sync.offset_ms, 1)
    figures["sync_correlation"] = round(sync.correlation, 4) if math.isfinite(sync.correlation) else "n/a"
    figures["sync_confident"] = "yes" if sync.confident else "no"
    if speech_frames < MIN_SPEECH_FRAMES_FOR_SYNC or not math.isfinite(sync.correlation):
        failures.append(
            f"sync not measurable: {speech_frames} speech frames with a face "
            f"(need {MIN_SPEECH_FRAMES_FOR_SYNC}) or a mouth that never moves"
        )
        return
    if sync.correlation < t.min_sync_correlation:
        failures.append(
            f"mouth does not follow the speech: sync correlation {sync.correlation:.2f} "
            f"below the minimum {t.min_sync_correlation:g}"
        )
        return  # an offset found at a weak correlation is noise: one reason is enough
    if abs(sync.offset_frames) > t.max_abs_av_offset_frames:
        side = "late" if sync.offset_frames > 0 else "early"
        failures.append(
            f"picture is {abs(sync.offset_frames)} frames ({abs(sync.offset_ms):.0f} ms) {side} against the "
            f"audio (av offset {sync.offset_frames:+d}, max ±{t.max_abs_av_offset_frames})"
        )


def silences(speech: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """Runs [start, end) of non-speech frames at least `min_frames` long."""
    return [(start, end) for start, end in _runs(~np.asarray(speech, bool)) if end - start >= min_frames]


def _check_silences(mouth, speech, rest_opening: float, fps: float, t: QAThresholds, failures, figures) -> None:
    # Coarticulation: the mouth may still close / already open ~80 ms into a pause.
    trim = int(round(0.08 * fps))
    worst, worst_at = -math.inf, None
    for start, end in silences(speech, int(math.ceil(t.min_silence_s * fps))):
        interior = mouth[start + trim:end - trim]
        interior = interior[np.isfinite(interior)]
        if interior.size == 0:
            continue
        median = float(np.median(interior))
        if median > worst:
            worst, worst_at = median, (start, end)
    figures["portrait_mouth_opening"] = round(rest_opening, 4)
    if worst_at is None:
        figures["silence_mouth_opening"] = "n/a"
        return
    excess = worst - rest_opening
    figures["silence_mouth_opening"] = round(worst, 4)
    figures["silence_mouth_opening_excess"] = round(excess, 4)
    if excess > t.max_silence_mouth_opening_excess:
        start, end = worst_at
        failures.append(
            f"mouth stays open in the pause {start / fps:.2f}-{end / fps:.2f} s: opening {worst:.3f} is "
            f"{excess:.3f} above the portrait's {rest_opening:.3f} (max {t.max_silence_mouth_opening_excess:g})"
        )


def _check_face_and_identity(picture: _PictureStats, has_reference: bool, t: QAThresholds, failures, figures) -> None:
    ratio = picture.face_found / picture.face_sampled if picture.face_sampled else 0.0
    figures["face_present_ratio"] = round(ratio, 4)
    figures["face_sampled_frames"] = picture.face_sampled
    if ratio < t.min_face_present_ratio:
        missing = picture.face_sampled - picture.face_found
        failures.append(
            f"no face in {missing} of {picture.face_sampled} sampled frames: present ratio {ratio:.3f} "
            f"(min {t.min_face_present_ratio:g})"
        )
    if not has_reference:
        return
    if not picture.identity_distances:
        figures["identity_distance"] = "n/a"
        failures.append("identity not measurable: no face in any identity sample frame")
        return
    distance = max(picture.identity_distances)
    figures["identity_distance"] = round(distance, 4)
    if distance > t.max_identity_distance:
        failures.append(
            f"face is not the portrait's person: identity distance {distance:.2f} above the maximum "
            f"{t.max_identity_distance:g} (dlib 128-d)"
        )


def _check_picture_stability(picture: _PictureStats, speech: np.ndarray, t: QAThresholds, failures, figures) -> None:
    luma = np.asarray(picture.luma)
    jumps = np.abs(np.diff(luma)) if len(luma) > 1 else np.zeros(0)
    max_jump = float(jumps.max()) if jumps.size else 0.0
    figures["max_luma_jump"] = round(max_jump, 3)
    figures["mean_luma"] = round(float(luma.mean()), 2) if luma.size else 0.0
    if max_jump > t.max_luma_jump:
        at = int(np.argmax(jumps)) + 1
        failures.append(
            f"flicker: mean luminance jumps by {max_jump:.1f} (of 255) at frame {at} "
            f"(max {t.max_luma_jump:g})"
        )
    black = np.flatnonzero(luma < t.black_luma)
    figures["black_frames"] = int(black.size)
    if black.size > t.max_black_frames:
        failures.append(
            f"{black.size} black frame(s) (mean luminance < {t.black_luma:g}), first at frame {int(black[0])} "
            f"(max {t.max_black_frames})"
        )
    jitter = head_jitter(np.asarray(picture.head))
    figures["head_jitter"] = round(jitter, 5) if math.isfinite(jitter) else "n/a"
    if math.isfinite(jitter) and jitter > t.max_head_jitter:
        failures.append(
            f"head jitters: frame-to-frame acceleration {jitter:.3f} eye-distances RMS (max {t.max_head_jitter:g})"
        )
    run, run_at = _longest_frozen_run(np.asarray(picture.change), speech, t.frozen_pixel_tolerance)
    figures["longest_frozen_run_frames"] = run
    if run > t.max_frozen_run_frames:
        failures.append(
            f"frozen picture during speech: {run} identical frames from frame {run_at} "
            f"(max {t.max_frozen_run_frames})"
        )


def _longest_frozen_run(change: np.ndarray, speech: np.ndarray, tolerance: float) -> tuple[int, int]:
    """Longest run of frames identical to their predecessor, counted on speech frames only.

    A run of k repeated frames is k + 1 identical frames; returns (length, first frame).
    """
    count = min(len(change), len(speech))
    best, best_at, length, start = 0, 0, 0, 0
    for index in range(count):
        if speech[index] and change[index] < tolerance:
            if length == 0:
                start = index - 1
            length += 1
            if length + 1 > best:
                best, best_at = length + 1, max(start, 0)
        else:
            length = 0
    return best, best_at


def _check_audio_track(track: tuple[np.ndarray, int] | None, t: QAThresholds, failures, figures) -> None:
    if track is None or len(track[0]) == 0:
        figures["loudness_lufs"] = "n/a"
        failures.append("no audio in the file to measure loudness")
        return
    samples, rate = track
    loudness = integrated_loudness(samples, rate)
    loudness = max(loudness, SILENCE_LUFS)
    clipping = float((np.abs(samples) >= 0.999).any(axis=1).mean())
    peak = float(np.abs(samples).max())
    figures["loudness_lufs"] = round(loudness, 2)
    figures["clipping_ratio"] = round(clipping, 6)
    figures["peak_dbfs"] = round(20 * math.log10(peak), 2) if peak > 0 else SILENCE_LUFS
    if loudness < t.min_loudness_lufs:
        quiet = "silent" if loudness <= SILENCE_LUFS else "too quiet"
        failures.append(f"audio is {quiet}: loudness {loudness:.1f} LUFS below the minimum {t.min_loudness_lufs:g}")
    elif loudness > t.max_loudness_lufs:
        failures.append(f"audio is too loud: loudness {loudness:.1f} LUFS above the maximum {t.max_loudness_lufs:g}")
    if clipping > t.max_clipping_ratio:
        failures.append(
            f"audio clips: {clipping * 100:.2f} % of samples at full scale (max {t.max_clipping_ratio * 100:g} %)"
        )


# --- the report plot ----------------------------------------------------------------------------


def plot_sync(measurement: SyncMeasurement | QAResult, out_png_path: str | Path) -> Path:
    """PNG of mouth opening vs audio envelope over time, speech shaded (for the QA report).

    Accepts a `SyncMeasurement` or a `QAResult` (its series). Each curve is scaled to its own
    maximum so their shapes compare; the title gives the offset and correlation when known.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    mouth, envelope, speech, fps, title = _plot_series(measurement)
    times = np.arange(len(envelope)) / fps
    figure = Figure(figsize=(8, 2.4), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    for start, end in _runs(speech):
        axes.axvspan(start / fps, end / fps, color="#dde8f5", linewidth=0)
    axes.plot(times, _unit_scale(envelope), color="#1f77b4", linewidth=1.0, label="audio envelope")
    axes.plot(np.arange(len(mouth)) / fps, _unit_scale(mouth), color="#d62728", linewidth=1.2, label="mouth opening")
    axes.set_xlim(0, max(times[-1] if len(times) else 1.0, 1 / fps))
    axes.set_ylim(-0.05, 1.1)
    axes.set_xlabel("time (s); shaded = speech")
    axes.set_yticks([])
    axes.set_ylabel("each scaled 0-1", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.legend(loc="upper right", fontsize=7, frameon=False)
    figure.tight_layout()
    out = Path(out_png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


def _plot_series(source: SyncMeasurement | QAResult):
    if isinstance(source, SyncMeasurement):
        mouth = np.asarray(source.mouth_opening, np.float64)
        title = f"av offset {source.offset_frames:+d} frames (+ = picture late), correlation {source.correlation:.2f}"
        return mouth, np.asarray(source.envelope, np.float64), np.asarray(source.speech_mask, bool), source.fps, title
    mouth = np.array([np.nan if v is None else v for v in source.mouth_series], np.float64)
    offset = source.figures.get("av_offset_frames", "?")
    correlation = source.figures.get("sync_correlation", "n/a")
    title = f"av offset {offset} frames (+ = picture late), correlation {correlation}; QA {'passed' if source.passed else 'failed'}"
    return mouth, np.asarray(source.envelope_series, np.float64), np.asarray(source.speech_series, bool), source.fps, title


def _unit_scale(values: np.ndarray) -> np.ndarray:
    """Min-max to 0..1: a smiling portrait's mouth never reaches 0, yet its shape is what matters."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values
    low, high = float(finite.min()), float(finite.max())
    return (values - low) / (high - low) if high > low else values - low


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))
