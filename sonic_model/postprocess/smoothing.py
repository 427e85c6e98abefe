"""Motion smoothing: take frame-to-frame shake out of the head's path, keep the mouth's motion.

Per frame, the face mesh (`LandmarkTracker`, about one mesh inference a frame) gives the
positions of landmarks that move with the skull only: eye corners, nose bridge, forehead and
the upper face outline. Never the mouth, lips, jaw, lids or brows, which move on their own. A
least-squares similarity transform (rotation, uniform scale, translation) from a reference set
of those points to each frame's is the head's pose. The pose path is smoothed by a centred
Gaussian over the neighbouring frames, and each frame is re-warped by the one similarity that
moves its head from the measured pose to the smoothed pose. A single global warp moves the
mouth with the head, so the mouth opening (a ratio of distances) is unchanged.

Streaming: a centred filter needs `radius` frames of look-ahead, so frames wait in a FIFO of
`radius + 1` frames and leave as soon as their window is complete; memory is flat in video
length. Poses are kept for the window only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

# Landmarks rigid with the skull (canonical MediaPipe mesh indices).
EYE_CORNER_POINTS = (33, 133, 362, 263)
NOSE_BRIDGE_POINTS = (168, 6, 197, 195, 5, 4)
FOREHEAD_POINTS = (10, 151, 9, 108, 337)
# The face oval from the temples upwards, both sides: the lower oval follows the jaw.
UPPER_FACE_OUTLINE_POINTS = (338, 297, 332, 284, 251, 389, 356, 454, 234, 127, 162, 21, 54, 103, 67, 109)
STABLE_POINTS = EYE_CORNER_POINTS + NOSE_BRIDGE_POINTS + FOREHEAD_POINTS + UPPER_FACE_OUTLINE_POINTS

# Default strength: Gaussian sigma of 2 frames (80 ms) halves the power of head motion at
# ~2.3 Hz and removes frame-to-frame shake; deliberate nods and turns (< 2 Hz) pass.
DEFAULT_MOTION_SMOOTHING = 2.0
MOTION_SMOOTHING_RANGE = (0.0, 8.0)
# A correction larger than this (in eye-corner distances) means the tracker slipped, not the
# head: such a frame is passed through unwarped rather than thrown across the picture.
MAX_CORRECTION_EYE_DISTANCES = 0.5
# The face mesh's frame-to-frame noise on a still head, RMS over the stable points, in
# eye-corner distances. Chosen on preview renders at 256 and 512 px: 0.004 let a steady
# head's QA jitter grow by 50 %, 0.008-0.012 keep it within 5-15 % and still cut a
# 1.5 px / 0.5 degree shake 3x at 256 px.
TRACKER_NOISE_EYE_DISTANCES = 0.010


@dataclass
class SmoothingFigures:
    """What the smoother did (JSON-able through `as_dict`); corrections in pixels."""

    strength: float = 0.0
    frames: int = 0
    frames_with_face: int = 0
    frames_warped: int = 0
    mean_correction_px: float = 0.0
    max_correction_px: float = 0.0

    def as_dict(self) -> dict:
        return {
            "motion_smoothing": self.strength,
            "motion_frames_warped": self.frames_warped,
            "motion_correction_mean_px": round(self.mean_correction_px, 3),
            "motion_correction_max_px": round(self.max_correction_px, 3),
        }


def similarity_pose(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(a, b, tx, ty) of the similarity x -> [[a, -b], [b, a]] x + t best mapping reference to points.

    Closed-form least squares (Umeyama without reflection) on [N, 2] arrays.
    """
    ref_mean, pts_mean = reference.mean(axis=0), points.mean(axis=0)
    ref_c, pts_c = reference - ref_mean, points - pts_mean
    norm = float((ref_c**2).sum())
    a = float((ref_c * pts_c).sum()) / norm
    b = float((ref_c[:, 0] * pts_c[:, 1] - ref_c[:, 1] * pts_c[:, 0]).sum()) / norm
    tx = pts_mean[0] - (a * ref_mean[0] - b * ref_mean[1])
    ty = pts_mean[1] - (b * ref_mean[0] + a * ref_mean[1])
    return np.array([a, b, tx, ty], np.float64)


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """3x3 homogeneous matrix of a (a, b, tx, ty) similarity."""
    a, b, tx, ty = pose
    return np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])


def gaussian_weights(sigma: float) -> np.ndarray:
    """Normalised centred Gaussian taps over [-radius, radius], radius = ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


class HeadMotionSmoother:
    """Streaming head stabiliser with a `radius`-frame look-ahead (see the module docstring).

    `run(frames)` yields the output frames in order, one for each input frame. As a side
    product it records every frame's mouth opening (from the same tracker pass; NaN without a
    face), which lip-sync calibration needs, so the video is tracked once for both steps.
    With `strength` 0 frames pass untouched (and are still tracked when `track` is True).
    """

    def __init__(self, strength: float = DEFAULT_MOTION_SMOOTHING, *, track: bool = True, tracker=None):
        if not MOTION_SMOOTHING_RANGE[0] <= strength <= MOTION_SMOOTHING_RANGE[1]:
            raise ValueError(f"motion smoothing strength {strength} is outside {MOTION_SMOOTHING_RANGE}")
        self.strength = float(strength)
        self.track = track or self.strength > 0
        self._tracker = tracker
        self.mouth_opening: list[float] = []
        self.figures = SmoothingFigures(strength=self.strength)
        self._correction_sum = 0.0
        self._reference: np.ndarray | None = None
        self.noise_floor_eye_distances = TRACKER_NOISE_EYE_DISTANCES

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        if not self.track:
            for frame in frames:
                self.figures.frames += 1
                yield frame
            return
        if self._tracker is None:
            from sonic_model.face import LandmarkTracker

            self._tracker = LandmarkTracker()
        if self.strength == 0:
            for frame in frames:
                self._observe(frame)
                yield frame
            return
        yield from self._smooth(frames)

    # -- internals -------------------------------------------------------------------------
    def _observe(self, frame: np.ndarray) -> tuple[np.ndarray | None, float]:
        """Track one frame: (pose or None, eye-corner distance or NaN); records the mouth."""
        from sonic_model.face import interocular_distance, mouth_opening

        self.figures.frames += 1
        landmarks = self._tracker(frame)
        if landmarks is None:
            self.mouth_opening.append(math.nan)
            return None, math.nan
        self.figures.frames_with_face += 1
        self.mouth_opening.append(mouth_opening(landmarks))
        points = landmarks[list(STABLE_POINTS), :2].astype(np.float64)
        if self._reference is None:
            self._reference = points
        return similarity_pose(points, self._reference), interocular_distance(landmarks)

    def _smooth(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        weights = gaussian_weights(self.strength)
        radius = len(weights) // 2
        # (frame, pose, eye distance) for frame indices first .. latest, where first is the
        # next frame to emit minus `radius` (its window's past half): at most 2 radius + 1.
        window: deque = deque()
        first = 0
        next_to_emit = 0
        for latest, frame in enumerate(frames):
            window.append((frame, *self._observe(frame)))
            # A frame leaves once `radius` frames after it are known.
            while latest - next_to_emit >= radius:
                yield self._emit(window, next_to_emit - first, weights, radius)
                next_to_emit += 1
                while next_to_emit - first > radius:
                    window.popleft()
                    first += 1
        # The last `radius` frames: their windows run past the end (those taps are dropped).
        while next_to_emit - first < len(window):
            yield self._emit(window, next_to_emit - first, weights, radius)
            next_to_emit += 1

    def _emit(self, window: deque, centre: int, weights: np.ndarray, radius: int) -> np.ndarray:
        frame, pose, unit = window[centre]
        if pose is None:
            return frame
        total, weight_sum = np.zeros(4), 0.0
        for position, (_f, other, _u) in enumerate(window):
            tap = position - centre + radius
            if other is not None and 0 <= tap < len(weights):
                total += weights[tap] * other
                weight_sum += weights[tap]
        smoothed = total / weight_sum
        # Corrections within the tracker's own noise would add that noise as real motion (a
        # steady head would start to shake), so the correction is shrunk towards none when
        # its size is near the noise floor: factor 1 - (floor / size)^2, zero below the floor.
        fitted = self._reference @ pose_matrix(pose)[:2, :2].T + pose[2:]
        moved = self._reference @ pose_matrix(smoothed)[:2, :2].T + smoothed[2:]
        size = float(np.sqrt(np.mean(np.sum((moved - fitted) ** 2, axis=1))))
        floor = self.noise_floor_eye_distances * unit
        factor = max(0.0, 1.0 - (floor / size) ** 2) if size > 0 else 0.0
        if factor == 0.0:
            return frame
        target = pose + factor * (smoothed - pose)
        # Correction: undo the measured pose, apply the target one (frame -> smoothed coords).
        correction = pose_matrix(target) @ np.linalg.inv(pose_matrix(pose))
        height, width = frame.shape[:2]
        corners = np.array(
            [[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1], [width / 2, height / 2, 1]], np.float64
        )
        shift = float(np.abs((corners @ correction.T)[:, :2] - corners[:, :2]).max())
        if not shift < MAX_CORRECTION_EYE_DISTANCES * unit:
            return frame
        self.figures.frames_warped += 1
        self._correction_sum += shift
        self.figures.max_correction_px = max(self.figures.max_correction_px, shift)
        self.figures.mean_correction_px = self._correction_sum / self.figures.frames_warped
        return cv2.warpAffine(
            frame, correction[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
