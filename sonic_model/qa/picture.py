"""The one streaming pass over a video's picture, and the mouth and head measures it takes per frame.

One frame is in memory at a time; only small per-frame series are kept (`PictureStats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic_model.qa.identity import identity_distance_in_frame
from sonic_model.qa.thresholds import QAThresholds
from sonic_model.video_reader import iter_rgb_and_luma_frames

THUMB_SIDE = 64


@dataclass
class PictureStats:
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


def scan_picture(
    video_path: str | Path,
    expected_frames: int,
    thresholds: QAThresholds,
    portrait_descriptor: np.ndarray | None,
    seams=None,
) -> PictureStats:
    """Decode the video once and collect every per-frame figure the checks need (see `PictureStats`).

    `seams` (a `sonic_model.qa.seams.SeamMeter`, optional) measures every
    `thresholds.seam_frame_step`-th frame with landmarks in the same pass.
    """
    import cv2

    from sonic_model.face import LandmarkTracker

    stats = PictureStats()
    tracker = LandmarkTracker()
    step = max(1, thresholds.landmark_frame_step)
    seam_step = math.lcm(step, max(1, thresholds.seam_frame_step))
    identity_frames = _spread_indices(expected_frames, thresholds.identity_samples)
    previous_thumb: np.ndarray | None = None
    for index, rgb, luma_plane in iter_rgb_and_luma_frames(video_path):
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
        # Seams on frames that have landmarks (the head is left out of the search); a frame
        # without a face is no evidence either way.
        if seams is not None and landmarks is not None and index % seam_step == 0:
            seams.add(luma_plane, landmarks)
        stats.head.append(head_anchor(landmarks) if landmarks is not None else (math.nan, math.nan, math.nan))
        if portrait_descriptor is not None and index in identity_frames:
            distance = identity_distance_in_frame(rgb, landmarks, portrait_descriptor)
            if distance is None:
                stats.identity_misses += 1
            else:
                stats.identity_distances.append(distance)
        stats.num_frames += 1
    return stats


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
