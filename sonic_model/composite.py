"""Seamless compositing: an animated face goes back into a still picture through a soft mask.

A generator animates a rectangle of the photo (the Sonic crop around the face, or the whole
photo with paste-back). Putting its frames back into a larger still picture (the photo itself,
or a rendition's canvas) with a rectangle shows the rectangle's edge as a straight step
wherever the generated pixels differ from the photo's (a moved head, a diffusion model's
slightly different colours and grain): across the neck and collar, typically. So the frames go
in through a mask that

- follows the head and neck (an ellipse around the face-mesh oval, raised for the hair, and a
  neck band below the jaw), never the generator's rectangle;
- is feathered over a band that scales with the face (`FEATHER_FRACTION` x the face height,
  forehead to chin on the face mesh), with a smooth (C1) ramp, so no edge of it is visible;
- is exactly 0 outside that band and, over the same band, fades to 0 before the rectangle the
  frames cover ends, so the picture outside stays exactly still (bit for bit the still picture).

Geometry: three pixel spaces, all x right and y down, with pixel centres at +0.5.
`source box` (x0, y0, x1, y1): the rectangle of the photo the generated frames show, in photo
pixels; `placement` (`Placement`): photo -> target (the picture composited into), a uniform
scale plus a shift. The generated frame is stretched onto its source box (generators resize
their crop to model resolution; this undoes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sonic_model import face as mesh

# Width of the soft band around the head/neck shape, as a fraction of the face height
# (forehead to chin on the face mesh). A quarter face (~5 cm on a person) hides the
# transition between a moving and a still neck; much less shows as a faint line on a turn.
FEATHER_FRACTION = 0.25
# The head: an ellipse around the face-mesh oval, this much larger, centred this far above the
# oval's centre (fractions of the face height), so hair and ears move with the face. Smaller
# (1.3) left a ghost of a full hairdo's outline where the band crossed it; at 1.7 the band lies
# on the background around the hair.
HEAD_SCALE = 1.7
HEAD_RAISE = 0.15
# The neck: from the jaw corners down this far below the chin (x face height), narrowing to
# this fraction of the jaw's width.
NECK_LENGTH = 0.75
NECK_BOTTOM_WIDTH = 0.85
# Jaw corners on the canonical face mesh (on FACE_OVAL): the subject's right, left.
JAW_CORNERS = (172, 397)


@dataclass(frozen=True)
class Placement:
    """Photo pixels -> target pixels: x' = scale * x + dx, y' = scale * y + dy (continuous)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def points(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        return xy * self.scale + np.array([self.dx, self.dy])

    def box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        return (
            x0 * self.scale + self.dx,
            y0 * self.scale + self.dy,
            x1 * self.scale + self.dx,
            y1 * self.scale + self.dy,
        )

    def matrix(self) -> np.ndarray:
        """The 2x3 matrix for `cv2.warpAffine` (pixel-index coordinates, centres at +0.5)."""
        s = self.scale
        return np.array([[s, 0.0, self.dx + 0.5 * s - 0.5], [0.0, s, self.dy + 0.5 * s - 0.5]])


def face_height(landmarks: np.ndarray) -> float:
    """Forehead (mesh point 10) to chin (152), in the landmarks' pixels: the unit of every band here."""
    xy = np.asarray(landmarks)[:, :2].astype(np.float64)
    return float(np.linalg.norm(xy[mesh.CHIN] - xy[mesh.FOREHEAD]))


def head_and_neck_polygons(
    landmarks_xy: np.ndarray,
    neck_length: float = NECK_LENGTH,
    head_scale: float = HEAD_SCALE,
    head_raise: float = HEAD_RAISE,
    fit_inside: tuple[float, float, float, float] | None = None,
) -> list[np.ndarray]:
    """The animated region's outline (before feathering): a head ellipse and a neck quad, [N, 2] each.

    `neck_length`: how far the neck reaches below the chin, in face heights; `head_scale`,
    `head_raise`: the ellipse's size and lift (module constants). `fit_inside` (x0, y0, x1, y1):
    the ellipse and the neck are shrunk (never below the face itself) to stay inside it, so the
    feathered outline, not the rectangle of the generated crop, is where the picture changes.
    """
    xy = np.asarray(landmarks_xy, np.float64)[:, :2]
    oval = xy[list(mesh.FACE_OVAL)]
    eye_axis = xy[mesh.LEFT_EYE_OUTER] - xy[mesh.RIGHT_EYE_OUTER]
    eu = eye_axis / max(float(np.linalg.norm(eye_axis)), 1e-6)
    ev = np.array([-eu[1], eu[0]])  # down the face
    u, v = oval @ eu, oval @ ev
    height = float(v.max() - v.min())
    width = float(u.max() - u.min())
    centre = eu * (u.max() + u.min()) / 2 + ev * ((v.max() + v.min()) / 2 - head_raise * height)
    angle = float(np.degrees(np.arctan2(eu[1], eu[0])))
    half_w, half_h = head_scale * width / 2, head_scale * (1 + head_raise) * height / 2
    if fit_inside is not None:
        x0, y0, x1, y1 = fit_inside
        # Room around the centre (the face is upright within a few degrees, so image axes will do).
        room_x = min(centre[0] - x0, x1 - centre[0])
        room_y = min(centre[1] - y0, y1 - centre[1])
        half_w = max(0.55 * width, min(half_w, room_x))
        half_h = max(0.55 * (1 + head_raise) * height, min(half_h, room_y))
    axes = (max(1, round(half_w)), max(1, round(half_h)))
    # ellipse2Poly takes integers: work at 16x and scale back for sub-pixel outlines.
    ellipse = (
        cv2.ellipse2Poly(
            (int(round(centre[0] * 16)), int(round(centre[1] * 16))),
            (axes[0] * 16, axes[1] * 16),
            int(round(angle)),
            0,
            360,
            5,
        ).astype(np.float64)
        / 16
    )
    right_jaw, left_jaw = xy[JAW_CORNERS[0]], xy[JAW_CORNERS[1]]
    jaw_width = float(np.linalg.norm(left_jaw - right_jaw))
    chin = xy[mesh.CHIN]
    if fit_inside is not None:
        # Down to the bottom of the room (not past it), however long the neck would be.
        neck_length = max(0.0, min(neck_length, (fit_inside[3] - chin[1]) / max(height, 1e-6)))
    bottom_centre = chin + ev * neck_length * height
    half_bottom = eu * NECK_BOTTOM_WIDTH * jaw_width / 2
    neck = np.array([right_jaw, left_jaw, bottom_centre + half_bottom, bottom_centre - half_bottom])
    return [ellipse, neck]


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 at edge0, 1 at edge1 (either order), C1-smooth between (no kink, so no visible band edge)."""
    span = edge1 - edge0
    if span == 0:
        return (np.asarray(x, np.float32) >= edge1).astype(np.float32)
    t = np.clip((np.asarray(x, np.float32) - edge0) / span, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def soft_mask(
    landmarks_xy: np.ndarray,
    roi: tuple[int, int, int, int],
    source_rect: tuple[float, float, float, float],
    *,
    feather_fraction: float = FEATHER_FRACTION,
    fade_edges: tuple[bool, bool, bool, bool] = (True, True, True, True),
) -> np.ndarray:
    """The compositing weight [h, w] float32 in 0..1 over `roi` (x0, y0, x1, y1) of the target.

    `landmarks_xy` are the face mesh in target pixels; `source_rect` is the rectangle the
    generated frames cover, in target pixels. 1 inside the head/neck outline, falling to 0 over
    `feather_fraction` x face height outside it, and to 0 over the same band before each edge
    of `source_rect` whose flag in `fade_edges` (left, top, right, bottom) is set (an edge on
    the photo's own border may stay hard: there is nothing beyond it to blend with).
    """
    rx0, ry0, rx1, ry1 = roi
    height, width = ry1 - ry0, rx1 - rx0
    band = max(1.0, feather_fraction * face_height(landmarks_xy))
    sx0, sy0, sx1, sy1 = source_rect
    left, top, right, bottom = fade_edges
    # The outline keeps a band's distance from every edge that fades, so its feather fits.
    room = (
        sx0 + band if left else -np.inf,
        sy0 + band if top else -np.inf,
        sx1 - band if right else np.inf,
        sy1 - band if bottom else np.inf,
    )
    # Rasterise at 4x sub-pixel precision (cv2 shift=2); 0 inside the outline, 255 outside.
    outside = np.full((height, width), 255, np.uint8)
    for polygon in head_and_neck_polygons(landmarks_xy, fit_inside=room):
        points = np.round((polygon - [rx0 + 0.5, ry0 + 0.5]) * 4).astype(np.int32)
        cv2.fillPoly(outside, [points], 0, lineType=cv2.LINE_8, shift=2)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    weight = 1.0 - smoothstep(0.0, band, distance)
    xs = np.arange(rx0, rx1, dtype=np.float32) + 0.5
    ys = np.arange(ry0, ry1, dtype=np.float32) + 0.5
    ramp_x = np.where((xs > sx0) & (xs < sx1), 1.0, 0.0).astype(np.float32)
    ramp_y = np.where((ys > sy0) & (ys < sy1), 1.0, 0.0).astype(np.float32)
    if left:
        ramp_x = np.minimum(ramp_x, smoothstep(sx0, sx0 + band, xs))
    if right:
        ramp_x = np.minimum(ramp_x, smoothstep(sx1, sx1 - band, xs))
    if top:
        ramp_y = np.minimum(ramp_y, smoothstep(sy0, sy0 + band, ys))
    if bottom:
        ramp_y = np.minimum(ramp_y, smoothstep(sy1, sy1 - band, ys))
    weight *= ramp_y[:, None] * ramp_x[None, :]
    weight[weight < 1.0 / 512] = 0.0  # below half a grey level: exactly still
    return weight.astype(np.float32)


class SoftCompositor:
    """Composites generated frames into a still target picture through `soft_mask`.

    `still` is the target picture ([H, W, 3] uint8: the photo, or a rendition's canvas);
    `landmarks_xy` the face mesh in photo pixels; `source_box` the photo rectangle the frames
    show; `placement` takes photo pixels to target pixels. Only the mask's bounding box is
    touched per frame (one affine warp of the frame into it and one blend); everything else is
    the still picture, bit for bit. `composite(frame)` returns the target picture; the array is
    reused by the next call (copy it to keep it).

    `whole_source=True` (paste-back frames, which are the whole photo already animated in
    place) puts the frames over their whole footprint without a mask. `interpolation` (OpenCV
    flag) scales the frames onto the target: bilinear by default (renditions, per frame, on
    every row); paste-back of a GPU generator's crop asks for Lanczos.
    """

    def __init__(
        self,
        still: np.ndarray,
        landmarks_xy: np.ndarray,
        source_box: tuple[float, float, float, float],
        placement: Placement = Placement(),
        *,
        feather_fraction: float = FEATHER_FRACTION,
        fade_edges: tuple[bool, bool, bool, bool] = (True, True, True, True),
        whole_source: bool = False,
        interpolation: int = cv2.INTER_LINEAR,
    ) -> None:
        self.still = np.ascontiguousarray(still)
        self.interpolation = interpolation
        self.height, self.width = self.still.shape[:2]
        self.source_box = tuple(float(v) for v in source_box)
        self.placement = placement
        target_landmarks = placement.points(np.asarray(landmarks_xy)[:, :2])
        source_rect = placement.box(self.source_box)
        sx0, sy0, sx1, sy1 = source_rect
        x0, y0 = max(0, int(np.floor(sx0))), max(0, int(np.floor(sy0)))
        x1, y1 = min(self.width, int(np.ceil(sx1))), min(self.height, int(np.ceil(sy1)))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise ValueError(f"the generated area {source_rect} lies outside the {self.width}x{self.height} target")
        self.whole_source = whole_source
        self.fade_edges = tuple(bool(edge) for edge in fade_edges)
        self._canvas = self.still.copy()
        self._i420: np.ndarray | None = None
        self._frame_size: tuple[int, int] | None = None
        self._matrix: np.ndarray | None = None
        if whole_source:
            # The frames are the whole photo (paste-back): they replace its footprint as they are
            # (they equal the still photo wherever nothing moves, so nothing needs blending).
            self.roi = (x0, y0, x1, y1)
            self.weight = self.still_weight = self.still_roi = None
            return
        weight = soft_mask(
            target_landmarks, (x0, y0, x1, y1), source_rect, feather_fraction=feather_fraction, fade_edges=fade_edges
        )
        rows, cols = np.flatnonzero(weight.any(axis=1)), np.flatnonzero(weight.any(axis=0))
        if rows.size == 0:
            raise ValueError("the head/neck mask does not overlap the generated area")
        # The region that changes: the mask's bounding box.
        self.roi = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        rx0, ry0, rx1, ry1 = self.roi
        weight = weight[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        self.weight = np.ascontiguousarray(weight)
        self.still_weight = np.ascontiguousarray(1.0 - weight)
        self.still_roi = np.ascontiguousarray(self.still[ry0:ry1, rx0:rx1])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the composited pictures."""
        return self.width, self.height

    def _frame_matrix(self, frame_w: int, frame_h: int) -> np.ndarray:
        """2x3 matrix from the pixel indices of a frame of this size to ROI pixel indices."""
        if self._frame_size != (frame_w, frame_h):
            bx0, by0, bx1, by1 = self.source_box
            s = self.placement.scale
            ax, ay = s * (bx1 - bx0) / frame_w, s * (by1 - by0) / frame_h
            ox = s * bx0 + self.placement.dx + 0.5 * ax - 0.5 - self.roi[0]
            oy = s * by0 + self.placement.dy + 0.5 * ay - 0.5 - self.roi[1]
            self._matrix = np.array([[ax, 0.0, ox], [0.0, ay, oy]])
            self._frame_size = (frame_w, frame_h)
        return self._matrix

    def warped(self, frame: np.ndarray) -> np.ndarray:
        """The generated frame placed over the ROI (before blending)."""
        rx0, ry0, rx1, ry1 = self.roi
        matrix = self._frame_matrix(frame.shape[1], frame.shape[0])
        if min(matrix[0, 0], matrix[1, 1]) < 0.66:
            # Shrinking by more than ~1.5x with a bilinear warp aliases: area-resize first.
            size = (max(1, round(frame.shape[1] * matrix[0, 0])), max(1, round(frame.shape[0] * matrix[1, 1])))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            matrix = self._frame_matrix(*size)
        return scale_into(frame, matrix, (rx1 - rx0, ry1 - ry0), self.interpolation)

    def composite(self, frame: np.ndarray) -> np.ndarray:
        """The still picture with `frame` blended in (valid until the next call)."""
        rx0, ry0, rx1, ry1 = self.roi
        if self.whole_source:
            self._canvas[ry0:ry1, rx0:rx1] = self.warped(frame)
            return self._canvas
        blended = cv2.blendLinear(self.warped(frame), self.still_roi, self.weight, self.still_weight)
        self._canvas[ry0:ry1, rx0:rx1] = blended
        return self._canvas

    def composite_i420(self, frame: np.ndarray, frame_i420: np.ndarray | None = None) -> np.ndarray:
        """The same picture as I420 (yuv420p) [H * 3 / 2, W] for an encoder fed yuv420p.

        With `frame_i420` (the generated frame already converted to I420, once for every
        rendition: `frame_to_i420`), the frame is warped and blended plane by plane straight
        into the still picture's I420 (luma at full, chroma at half resolution: half the
        pixels of an RGB blend, and no conversion of the composited box). Without it, or when
        the frames are shrunk a lot (area-averaged first) or have odd sides, the RGB picture's
        changing box is converted (widened to even coordinates, so its 2x2 chroma blocks are
        the same as a whole-picture conversion's). The rest of the picture stays converted from
        the still picture. Needs even sides. Reused by the next call.
        """
        height, width = self.height, self.width
        if height % 2 or width % 2:
            raise ValueError(f"I420 needs even sides, the target is {width}x{height}")
        if self._i420 is None:
            self._i420 = cv2.cvtColor(np.ascontiguousarray(self.still), cv2.COLOR_RGB2YUV_I420)
        if frame_i420 is not None and not (frame.shape[0] % 2 or frame.shape[1] % 2):
            matrix = self._frame_matrix(frame.shape[1], frame.shape[0])
            if min(matrix[0, 0], matrix[1, 1]) >= 0.66:
                return self._composite_planes(frame_i420, frame.shape[1], frame.shape[0])
        rgb = self.composite(frame)
        x0, y0, x1, y1 = self.roi
        x0, y0 = x0 - x0 % 2, y0 - y0 % 2
        x1, y1 = min(width, x1 + x1 % 2), min(height, y1 + y1 % 2)
        part = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2YUV_I420)
        for whole, piece in zip(
            _i420_planes(self._i420, width, height), _i420_planes(part, x1 - x0, y1 - y0), strict=False
        ):
            scale = whole.shape[0] // (height // 2)  # 2 for luma, 1 for chroma
            step = 2 // scale
            whole[y0 // step : y1 // step, x0 // step : x1 // step] = piece
        return self._i420

    def _plane_setup(self) -> None:
        """The changing box widened to even coordinates, its weights per plane, and the still
        picture's planes there (for `_composite_planes`)."""
        x0, y0, x1, y1 = self.roi
        ex0, ey0 = x0 - x0 % 2, y0 - y0 % 2
        ex1, ey1 = min(self.width, x1 + x1 % 2), min(self.height, y1 + y1 % 2)
        self._even_roi = (ex0, ey0, ex1, ey1)
        luma = np.zeros((ey1 - ey0, ex1 - ex0), np.float32)
        luma[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0] = 1.0 if self.whole_source else self.weight
        # A chroma sample covers 2x2 luma pixels: its weight is their mean.
        chroma = cv2.resize(luma, ((ex1 - ex0) // 2, (ey1 - ey0) // 2), interpolation=cv2.INTER_AREA)
        planes = _i420_planes(self._i420, self.width, self.height)
        # The still picture's own planes (self._i420 may hold a composited frame already).
        still_planes = _i420_planes(cv2.cvtColor(self.still, cv2.COLOR_RGB2YUV_I420), self.width, self.height)
        self._planes = []
        for index, (plane, still, weight) in enumerate(zip(planes, still_planes, (luma, chroma, chroma), strict=False)):
            factor = 1 if index == 0 else 2
            box = (slice(ey0 // factor, ey1 // factor), slice(ex0 // factor, ex1 // factor))
            self._planes.append(
                (plane, box, factor, weight, np.ascontiguousarray(1.0 - weight), np.ascontiguousarray(still[box]))
            )

    def _composite_planes(self, frame_i420: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
        if getattr(self, "_planes", None) is None:
            self._plane_setup()
        ex0, ey0 = self._even_roi[:2]
        matrix = self._frame_matrix(frame_w, frame_h)
        # The frame -> ROI map in continuous coordinates, x' = a x + t (ROI origin added back).
        ax, ay = matrix[0, 0], matrix[1, 1]
        tx = matrix[0, 2] - 0.5 * ax + 0.5 + self.roi[0]
        ty = matrix[1, 2] - 0.5 * ay + 0.5 + self.roi[1]
        for source, (plane, box, factor, weight, still_weight, still) in zip(
            _i420_planes(frame_i420, frame_w, frame_h), self._planes, strict=False
        ):
            # The same map on a plane `factor` times smaller: the shift scales, the zoom does not.
            plane_matrix = np.array(
                [
                    [ax, 0.0, tx / factor + 0.5 * ax - 0.5 - ex0 / factor],
                    [0.0, ay, ty / factor + 0.5 * ay - 0.5 - ey0 / factor],
                ]
            )
            size = (box[1].stop - box[1].start, box[0].stop - box[0].start)
            warped = scale_into(source, plane_matrix, size, self.interpolation)
            plane[box] = cv2.blendLinear(warped, still, weight, still_weight)
        return self._i420


def scale_into(source: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """`cv2.warpAffine(source, matrix, size, interpolation, BORDER_REPLICATE)` for a `matrix` that
    only scales and shifts (every warp here): where a resize of the rows and columns needed and a
    crop make the same map (bilinear, `_resize_crop`), that, at ~4x less CPU (renditions do it per
    frame, per plane); else the warp. The result may be a view of a temporary array."""
    width, height = size
    if interpolation == cv2.INTER_LINEAR and matrix[0, 1] == 0 and matrix[1, 0] == 0:
        crop_x = _resize_crop(matrix[0, 0], matrix[0, 2], width, source.shape[1])
        crop_y = _resize_crop(matrix[1, 1], matrix[1, 2], height, source.shape[0])
        if crop_x and crop_y:
            (sx0, sx1, kx), (sy0, sy1, ky) = crop_x, crop_y
            if min(sx0, sy0) < 0 or sx1 > source.shape[1] or sy1 > source.shape[0]:
                pad = RESIZE_PAD
                source = cv2.copyMakeBorder(source, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
                sx0, sx1, sy0, sy1 = sx0 + pad, sx1 + pad, sy0 + pad, sy1 + pad
            part = np.ascontiguousarray(source[sy0:sy1, sx0:sx1])
            resized = cv2.resize(part, None, fx=matrix[0, 0], fy=matrix[1, 1], interpolation=cv2.INTER_LINEAR)
            return resized[ky : ky + height, kx : kx + width]
    return cv2.warpAffine(
        np.ascontiguousarray(source), matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
    )


# Rows and columns of edge (repeated) a frame plane may get for `_resize_crop`'s starts.
RESIZE_PAD = 64


def _resize_crop(zoom: float, shift: float, out_len: int, src_len: int) -> tuple[int, int, int] | None:
    """Source indices [s0, s1) and a crop start k such that `cv2.resize(src[s0:s1], fx=zoom)[k:k + out_len]`
    is, along one axis, the bilinear warp x = zoom * s + shift (pixel indices) that warpAffine does.

    cv2.resize given a factor (not a size) samples its output pixel r at s0 + (r + 0.5) / zoom - 0.5:
    the warp's position exactly when k = -shift - zoom * s0 + (zoom - 1) / 2 is a whole number. The
    nearest start before the first pixel needed whose k is within 1/64 of a source pixel of a whole
    number is taken (warpAffine itself rounds each position to 1/32; this offset is the same for
    every pixel, so it is kept below that); None if none of `RESIZE_PAD` is. s0 < 0 or
    s1 > src_len: the plane is extended by its edge (`RESIZE_PAD`), as the warp's border is.
    """
    if zoom < 1:
        return None
    first, last = -shift / zoom, (out_len - 1 - shift) / zoom  # where the first and last pixels sample
    need0, s1 = int(np.floor(first)), int(np.floor(last)) + 2  # bilinear: floor and floor + 1
    if need0 < -RESIZE_PAD or s1 > src_len + RESIZE_PAD:
        return None
    for s0 in range(need0, max(-RESIZE_PAD, need0 - RESIZE_PAD) - 1, -1):
        k_exact = -shift - zoom * s0 + (zoom - 1) / 2
        k = round(k_exact)
        if k >= 0 and abs(k_exact - k) * 64 <= zoom:
            # cv2.resize's output length is round((s1 - s0) * zoom): the crop must fit in it.
            return (s0, s1, k) if k + out_len <= int(np.floor((s1 - s0) * zoom + 0.5)) else None
    return None


def frame_to_i420(frame: np.ndarray) -> np.ndarray | None:
    """A generated RGB frame as I420 (for `SoftCompositor.composite_i420`), None for odd sides."""
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        return None
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)


def _i420_planes(buffer: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y [H, W], U and V [H/2, W/2] planes of an I420 buffer."""
    flat = buffer.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    )
