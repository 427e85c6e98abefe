"""Seams: a straight discontinuity along the edge of a composited region that the portrait does not have.

When generated frames are put back into a still picture (paste-back, renditions), a hard edge
shows as a straight line across the picture (a rectangle's side, typically across the neck and
collar) where the generated pixels stop and the still ones start. The measure, per frame:

1. `D = Y - R`: the frame's luma minus the luma of the still picture it was composited into
   (the portrait, or the rendition's still canvas; `reference`). The portrait's own straight
   lines (a table edge, a door frame) are in both and cancel; the still surroundings are ~0.
2. Across every row boundary, the step |D(y) - D(y - 1)|, averaged along the row over a window
   of `seam_window_fraction` x the frame's short side (a seam is straight and long; texture
   and moving edges are not).
3. Less the same average two rows above and below (the local level of change): a seam is a
   step in one place, a soft blend spreads the same change over its whole band.
4. The largest such excess in the frame, rows and (the same on the transposed frame) columns,
   outside the face itself (its moving lips and lids make short steps of their own), in grey
   levels (0-255): the frame's seam strength.

The video's figure is the 90th percentile over the sampled frames (a seam that is there "in
most frames" counts; one odd frame does not). Measured here (512-1080 px frames, preview
generator, x264): soft-composited videos 0.3-1.5, the same frames pasted with a hard rectangle
edge 6-25; the threshold `max_seam_strength` is 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The head is not searched, nor the neck to this many face heights below the chin.
NECK_MARGIN = 0.35
# Rows compared as "the local level": this many rows above and below.
NEIGHBOUR_OFFSET = 2


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale, float32: what `probe.iter_rgb_and_luma_frames` gives for a
    frame encoded from `rgb` (the encoder's Y, mapped from video range to full range)."""
    rgb = np.asarray(rgb, np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _row_step_excess(difference: np.ndarray, window: int, skip: np.ndarray | None) -> np.ndarray:
    """Per row boundary and column: mean step along `window` columns minus its neighbours'.

    `skip` (a boolean array shaped like `difference`) marks pixels left out before averaging.
    """
    steps = np.abs(np.diff(difference, axis=0))  # [H - 1, W]; row b is the boundary below image row b
    if skip is not None:
        steps[skip[:-1] | skip[1:]] = 0
    along = cv2.blur(steps, (window, 1), borderType=cv2.BORDER_REFLECT)
    k = NEIGHBOUR_OFFSET
    if along.shape[0] <= 2 * k:
        return np.zeros((0, along.shape[1]), np.float32)
    centre = along[k:-k]
    local = 0.5 * (along[: -2 * k] + along[2 * k:])
    return centre - local  # row r of this is boundary r + k (between image rows r + k and r + k + 1)


def seam_excess_maps(
    frame_luma: np.ndarray,
    reference_luma: np.ndarray,
    *,
    window_fraction: float = 1 / 6,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3 of the measure: the excess step per row boundary and per column boundary.

    Returns (rows [H - 1 - 2k, W], cols [W - 1 - 2k, H]); pixels where `skip` is set are left out.
    """
    difference = np.asarray(frame_luma, np.float32) - np.asarray(reference_luma, np.float32)
    height, width = difference.shape
    window = max(8, int(round(window_fraction * min(height, width))))
    rows = _row_step_excess(difference, window, skip)
    cols = _row_step_excess(np.ascontiguousarray(difference.T), window, None if skip is None else np.ascontiguousarray(skip.T))
    return rows, cols


def seam_strength(frame_luma: np.ndarray, reference_luma: np.ndarray, **options) -> float:
    """One frame's seam strength (grey levels): the largest excess step (`seam_excess_maps` options)."""
    rows, cols = seam_excess_maps(frame_luma, reference_luma, **options)
    return max([float(m.max()) for m in (rows, cols) if m.size] or [0.0])


def head_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [H, W]: the head (the compositor's head ellipse) and the neck to `NECK_MARGIN`
    face heights below the chin: skipped by the measure (lips, lids, jaw and the head's outline
    move there: steps of their own)."""
    from sonic_model.composite import head_and_neck_polygons

    region = np.zeros(shape[:2], np.uint8)
    for polygon in head_and_neck_polygons(np.asarray(landmarks)[:, :2], neck_length=NECK_MARGIN):
        cv2.fillPoly(region, [np.round(polygon * 4 - 2).astype(np.int32)], 1, shift=2)
    return region.astype(bool)


@dataclass
class SeamMeter:
    """Averages the excess-step maps of sampled frames against one still reference picture.

    A compositing seam stays where it is (the generated area does not move in the frame),
    while moving edges of the head and mouth move: averaged over frames, a seam keeps its full
    height and moving edges flatten out. The video's figure (`strength`) is the largest value
    of the averaged maps.
    """

    reference_rgb: np.ndarray
    window_fraction: float = 1 / 6
    frames: int = 0
    _rows: np.ndarray | None = None
    _cols: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.reference_luma = luma(self.reference_rgb)

    def fits(self, frame_shape: tuple[int, ...]) -> bool:
        """Whether a decoded frame has the reference's size (odd sides are cropped by the encoder)."""
        height, width = frame_shape[:2]
        ref_h, ref_w = self.reference_luma.shape
        return height <= ref_h <= height + 1 and width <= ref_w <= width + 1

    def add(self, frame_luma: np.ndarray, face_landmarks: np.ndarray | None = None) -> None:
        """Measure one frame (its decoded luma plane); the face is skipped when its landmarks are given."""
        height, width = frame_luma.shape[:2]
        skip = head_region(face_landmarks, (height, width)) if face_landmarks is not None else None
        rows, cols = seam_excess_maps(
            frame_luma, self.reference_luma[:height, :width], window_fraction=self.window_fraction, skip=skip
        )
        if self._rows is None or self._rows.shape != rows.shape or self._cols.shape != cols.shape:
            self._rows, self._cols, self.frames = np.zeros_like(rows), np.zeros_like(cols), 0
        self._rows += rows
        self._cols += cols
        self.frames += 1

    @property
    def strength(self) -> float:
        """The video's seam strength in grey levels (NaN when no frame was measured)."""
        if not self.frames:
            return float("nan")
        return max([float(m.max()) / self.frames for m in (self._rows, self._cols) if m.size] or [0.0])

    def where(self) -> str:
        """Where the strongest seam is, in words (for a failure's reason)."""
        if not self.frames:
            return "nowhere"
        k = NEIGHBOUR_OFFSET
        best = max(((m, name) for m, name in ((self._rows, "horizontal"), (self._cols, "vertical")) if m.size),
                   key=lambda item: item[0].max())
        matrix, name = best
        line, along = np.unravel_index(int(matrix.argmax()), matrix.shape)
        axis = "y" if name == "horizontal" else "x"
        return f"a {name} line at {axis}={int(line) + k + 1} px (around {'x' if axis == 'y' else 'y'}={int(along)})"
