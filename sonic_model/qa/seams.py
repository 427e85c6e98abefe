"""Seams: a straight discontinuity along the edge of a composited region that the portrait does not have.

When generated frames are put back into a still picture (paste-back, renditions), a hard edge
shows as a straight line across the picture (a rectangle's side, typically across the neck and
collar) where the generated pixels stop and the still ones start. The measure, per frame:

1. `D = Y - R`: the frame's luma minus the luma of the still picture it was composited into
   (the portrait, or the rendition's still canvas; `reference`). The portrait's own straight
   lines (a table edge, a door frame) are in both and cancel; the still surroundings are ~0.
2. Across every row boundary, the step |D(y) - D(y - 1)|, averaged along the row over a window
   of `window_fraction` (1/6) x the frame's short side (a seam is straight and long; texture
   and moving edges are not).
3. Less the same average two rows above and below (the local level of change): a seam is a
   step in one place, a soft blend spreads the same change over its whole band.
4. Outside the head and upper neck (lips, lids and jaw move there, and the hair's outline
   sways with the head inside the compositing mask's band: `head_region`), averaged over the
   sampled frames (a compositing edge stays on its line), rows and (the same on the transposed
   frame) columns: the largest value is the video's seam strength, in grey levels (0-255).

Measured here on the same generated frames (the preview's crop moved by a few pixels and 4
levels brighter, as a diffusion model's are), encoded with x264, for two portraits (the
astronaut landscape, Grace Hopper), pasted back into the photo and into the vertical rendition:
through the soft mask 1.4-2.3, with a hard rectangle 12.7-22.6. The threshold
`QAThresholds.max_seam_strength` is 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The head is not searched (the compositing mask's head ellipse and feather band: the hair's
# outline moves with the head there), nor the neck to this many face heights below the chin.
# The sides and the bottom of a generated crop (about a face width from the face's centre, half
# a face below the chin) lie mostly outside, and are searched.
NECK_MARGIN = 0.35
# Rows compared as "the local level": this many rows above and below.
NEIGHBOUR_OFFSET = 2


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale, float32: what `video_reader.iter_rgb_and_luma_frames` gives for a
    frame encoded from `rgb` (the encoder's Y, mapped from video range to full range)."""
    rgb = np.asarray(rgb, np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _row_steps_along(difference: np.ndarray, window: int, skip: np.ndarray | None) -> np.ndarray:
    """Per row boundary and column: the step |D(y + 1) - D(y)|, averaged along `window` columns.

    `skip` (a boolean array shaped like `difference`) marks pixels left out before averaging.
    Row b of the result is the boundary between image rows b and b + 1.
    """
    steps = np.abs(np.diff(difference, axis=0))
    if skip is not None:
        steps[skip[:-1] | skip[1:]] = 0
    return cv2.blur(steps, (window, 1), borderType=cv2.BORDER_REFLECT)


def _excess(along: np.ndarray) -> np.ndarray:
    """Each boundary's value less the mean of the boundaries `NEIGHBOUR_OFFSET` above and below.

    Row r of the result is boundary r + k (between image rows r + k and r + k + 1).
    """
    k = NEIGHBOUR_OFFSET
    if along.shape[0] <= 2 * k:
        return np.zeros((0, along.shape[1]), np.float32)
    return along[k:-k] - 0.5 * (along[: -2 * k] + along[2 * k :])


def _window(shape: tuple[int, int], window_fraction: float) -> int:
    return max(8, int(round(window_fraction * min(shape))))


def seam_step_maps(
    frame_luma: np.ndarray,
    reference_luma: np.ndarray,
    *,
    window_fraction: float = 1 / 6,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 of the measure for one frame: the along-line mean step per row boundary [H - 1, W]
    and per column boundary [W - 1, H]; pixels where `skip` is set are left out."""
    difference = np.asarray(frame_luma, np.float32) - np.asarray(reference_luma, np.float32)
    window = _window(difference.shape, window_fraction)
    rows = _row_steps_along(difference, window, skip)
    cols = _row_steps_along(
        np.ascontiguousarray(difference.T), window, None if skip is None else np.ascontiguousarray(skip.T)
    )
    return rows, cols


def seam_strength(frame_luma: np.ndarray, reference_luma: np.ndarray, **options) -> float:
    """One frame's seam strength (grey levels): the largest excess step (`seam_step_maps` options)."""
    excess = [_excess(m) for m in seam_step_maps(frame_luma, reference_luma, **options)]
    return max([float(m.max()) for m in excess if m.size] or [0.0])


def head_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [H, W] left out of the search: the head (the compositing mask's ellipse) and the
    neck to `NECK_MARGIN` face heights below the chin, widened by the mask's feather band. Lips,
    lids and jaw move there, and so does the hair's outline, which the band blends."""
    from sonic_model.composite import FEATHER_FRACTION, face_height, head_and_neck_polygons

    outside = np.full(shape[:2], 255, np.uint8)
    for polygon in head_and_neck_polygons(np.asarray(landmarks)[:, :2], neck_length=NECK_MARGIN):
        cv2.fillPoly(outside, [np.round(polygon * 4 - 2).astype(np.int32)], 0, shift=2)
    band = FEATHER_FRACTION * face_height(landmarks)
    return cv2.distanceTransform(outside, cv2.DIST_L2, 3) <= band


@dataclass
class SeamMeter:
    """Averages the step maps of sampled frames against one still reference picture.

    The steps are averaged over frames before each line is compared with its neighbours: a
    compositing seam stays on the same line in every frame (the generated area does not move
    in the frame) and keeps its full height, while an edge that moves (the hair's outline
    swaying with the head) spreads over the lines it passes and flattens out. The video's figure
    (`strength`) is the largest excess of the averaged maps.
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
        rows, cols = seam_step_maps(
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
        return max([float(m.max()) for m in self._excess_maps() if m.size] or [0.0])

    def _excess_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return _excess(self._rows / self.frames), _excess(self._cols / self.frames)

    def where(self) -> str:
        """Where the strongest seam is, in words (for a failure's reason)."""
        if not self.frames:
            return "nowhere"
        k = NEIGHBOUR_OFFSET
        rows, cols = self._excess_maps()
        best = max(
            ((m, name) for m, name in ((rows, "horizontal"), (cols, "vertical")) if m.size),
            key=lambda item: item[0].max(),
        )
        matrix, name = best
        line, along = np.unravel_index(int(matrix.argmax()), matrix.shape)
        axis = "y" if name == "horizontal" else "x"
        return f"a {name} line at {axis}={int(line) + k + 1} px (around {'x' if axis == 'y' else 'y'}={int(along)})"
