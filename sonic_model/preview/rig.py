"""A 2D face rig built from the face mesh: per-frame warps of a still portrait.

A frame is made in two backward warps (`cv2.remap`), each on a region of interest only:

1. **Local** (the face): jaw drop and lip opening, lip spread/round, brow raise, eye blinks.
   The lips open by a *split* warp: every output pixel above the mouth's gap samples the
   portrait from below it (the upper lip rises), every pixel under it samples from above (the
   lower lip and jaw drop). Where the two meet, the gap is painted as a mouth interior: a
   dark cavity with a band of upper teeth and, when wide open, a hint of lower teeth and
   tongue. The gap's edges are exactly where the warp samples the lips' meeting line, so lips
   and interior join without seams.
2. **Head**: small rotations (yaw, pitch, roll) and shifts of the whole head, fading out
   towards the shoulders and background, applied to the result of step 1.

Geometry lives in *face coordinates*: origin at the mouth centre, `u` along the line from the
subject's right to left outer eye corner, `v` perpendicular to it pointing down the face, both
in image pixels. Sizes are fractions of the inter-ocular distance (IOD), so the rig behaves the
same at any resolution.

Everything that does not depend on the frame (coordinate grids, displacement basis fields) is
computed once in `FaceRig.__init__`; a frame is then a few vectorised array operations on the
ROIs plus two remaps. The lip-spread control changes the mouth's width, which the opening
fields depend on, so those fields are precomputed at three spread levels and interpolated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from sonic_model import face as mesh

# Mouth gap (inner lips) at opening 1, and how it divides between the lips.
GAP_AT_FULL_OPEN = 0.24  # x IOD
UPPER_LIP_SHARE = 0.22  # the rest is the lower lip + jaw
# Controls are soft-limited to this opening (see controls.build_controls).
MAX_OPENING = 1.6
# Lip spread: the mouth's half-width grows by this fraction at spread +1 (shrinks at -1).
SPREAD_GAIN = 0.12
SPREAD_LEVELS = (-1.0, 0.0, 1.0)
# Horizontal broadening of the jaw field with depth below the mouth (1 = twice as wide at chin).
JAW_BROADENING = 1.0
# Teeth: upper band height (x IOD, at most a share of the gap), lower band, and visible width.
UPPER_TEETH = 0.085
LOWER_TEETH = 0.04
TEETH_HALF_WIDTH = (0.55, 0.85)
TOOTH_WIDTH = 0.075  # x IOD, for the faint gaps between teeth  # full -> none, as a fraction of the mouth's half-width
# Brow raise at brow control 1 (x IOD).
BROW_LIFT = 0.04
# Blink: how far above the upper lid the skin stretches (x IOD); lids stop this short of shut.
LID_STRETCH = 0.22
BLINK_MAX = 0.96
# Head fields are computed on a grid this many times coarser than the image, then upsampled.
HEAD_FIELD_STEP = 4


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1, smooth (C1) in between; works for edge0 > edge1 too."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Roi:
    """A rectangle of the image: x0, y0 inclusive, x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Absolute pixel coordinates (x, y) of every pixel, float32."""
        ys, xs = np.mgrid[self.y0:self.y1, self.x0:self.x1].astype(np.float32)
        return xs, ys

    def within(self, outer: "Roi") -> tuple[slice, slice]:
        """This ROI's slices inside `outer`'s arrays."""
        return (slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0))

    @staticmethod
    def around(points: np.ndarray, margin: float, width: int, height: int) -> "Roi":
        """Bounding box of points (x, y) plus a margin, clipped to the image."""
        x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
        x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int) + 1
        return Roi(max(0, x0), max(0, y0), min(width, x1), min(height, y1))

    def intersection(self, other: "Roi") -> "Roi":
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        return Roi(x0, y0, max(x0, min(self.x1, other.x1)), max(y0, min(self.y1, other.y1)))

    def union(self, other: "Roi") -> "Roi":
        return Roi(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


class FaceFrame:
    """Face coordinates: origin at the mouth centre, u along the eyes, v down the face."""

    def __init__(self, landmarks: np.ndarray):
        xy = landmarks[:, :2].astype(np.float64)
        self.origin = (xy[13] + xy[14]) / 2
        axis = xy[mesh.LEFT_EYE_OUTER] - xy[mesh.RIGHT_EYE_OUTER]
        self.iod = float(np.linalg.norm(axis))
        self.eu = axis / max(self.iod, 1e-6)
        self.ev = np.array([-self.eu[1], self.eu[0]])

    def to_face(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.origin[0], y - self.origin[1]
        return (dx * self.eu[0] + dy * self.eu[1]).astype(np.float32), (dx * self.ev[0] + dy * self.ev[1]).astype(np.float32)

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Face-coordinate points -> image points [N, 2]."""
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return self.origin + np.outer(u, self.eu) + np.outer(v, self.ev)

    def vector_to_image(self, du: np.ndarray, dv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face-coordinate displacement -> image (dx, dy)."""
        return du * np.float32(self.eu[0]) + dv * np.float32(self.ev[0]), du * np.float32(self.eu[1]) + dv * np.float32(self.ev[1])


@dataclass(frozen=True)
class FrameControls:
    """One frame's controls (see `controls.Controls` for units)."""

    mouth: float = 0.0
    spread: float = 0.0
    blink: float = 0.0
    brow: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0


class _MouthGeometry:
    """The mouth as measured on the portrait, in face coordinates."""

    def __init__(self, frame: FaceFrame, landmarks: np.ndarray):
        u, v = frame.to_face(landmarks[:, 0], landmarks[:, 1])
        upper = np.array(mesh.INNER_LIP_UPPER_CONTOUR)
        lower = np.array(mesh.INNER_LIP_LOWER_CONTOUR)
        mid_u = (u[upper] + u[lower]) / 2
        mid_v = (v[upper] + v[lower]) / 2
        order = np.argsort(mid_u)
        # The lips' meeting line (the middle of the gap if the portrait's mouth is open).
        self.line_u, self.line_v = mid_u[order].astype(np.float64), mid_v[order].astype(np.float64)
        self.centre_u = float((u[78] + u[308]) / 2)
        self.half_width = float(abs(u[308] - u[78]) / 2)
        self.outer_half_width = float(abs(u[291] - u[61]) / 2)
        line_at_centre = float(np.interp(self.centre_u, self.line_u, self.line_v))
        iod = frame.iod
        # line -> base of the nose, line -> chin (floors guard against odd meshes)
        self.to_nose = max(float(line_at_centre - v[mesh.SUBNASALE]), 0.2 * iod)
        self.to_chin = max(float(v[mesh.CHIN] - line_at_centre), 0.5 * iod)

    def line(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.line_u, self.line_v).astype(np.float32)


class FaceRig:
    """Animates one portrait: `render(controls)` returns a new frame (the portrait is kept)."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray):
        self.image = np.ascontiguousarray(image)
        self.height, self.width = image.shape[:2]
        self.frame = FaceFrame(landmarks)
        self.iod = self.frame.iod
        self.mouth = _MouthGeometry(self.frame, landmarks)
        # A portrait that already shows its teeth keeps them with the rising upper lip, so less
        # painted tooth is needed under them.
        rest_gap = mesh.mouth_opening(landmarks) * self.iod
        self.painted_teeth_height = max(0.0, UPPER_TEETH * self.iod - 0.5 * rest_gap)
        self.upper_gap = GAP_AT_FULL_OPEN * UPPER_LIP_SHARE * self.iod
        self.lower_gap = GAP_AT_FULL_OPEN * (1.0 - UPPER_LIP_SHARE) * self.iod
        # Per thread: the portrait with the current frame's local warp applied. Each render
        # rewrites the whole local ROI before reading it, so only concurrent threads must not share.
        self._buffers = threading.local()

        self._build_local_roi(landmarks)
        self._build_mouth_fields()
        self._build_brow_field(landmarks)
        self._build_eyes(landmarks)
        self._build_head_fields(landmarks)
        self._measure_colours(landmarks)

    # --- set-up ----------------------------------------------------------------------------

    def _face_box_points(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        return self.frame.to_image(np.array([u0, u1, u1, u0]), np.array([v0, v0, v1, v1]))

    def _build_local_roi(self, landmarks: np.ndarray) -> None:
        m, iod = self.mouth, self.iod
        # Reach of every mouth field: jaw broadening (x1.6 margin for its fade), the spread
        # window (2.2 outer half-widths across, 0.7 IOD up and down), nose above, neck below.
        jaw_half = max(m.half_width * (1 + JAW_BROADENING) * 1.6, 2.3 * m.outer_half_width)
        jaw_points = self._face_box_points(
            m.centre_u - jaw_half, m.centre_u + jaw_half,
            float(m.line_v.min()) - max(m.to_nose, 0.75 * iod), float(m.line_v.max()) + max(1.7 * m.to_chin, 0.75 * iod),
        )
        self.jaw_roi = Roi.around(jaw_points, 2, self.width, self.height)
        self.local_roi = Roi.around(landmarks[:, :2], 0.1 * iod, self.width, self.height).union(self.jaw_roi)
        self.local_x, self.local_y = self.local_roi.grid()

    def _build_mouth_fields(self) -> None:
        """Opening fields on the jaw ROI at each spread level: spread shift, w_up, w_low, p, d."""
        m, iod = self.mouth, self.iod
        xs, ys = self.jaw_roi.grid()
        u, v = self.frame.to_face(xs, ys)
        upper_band = self.upper_gap * MAX_OPENING
        lower_band = self.lower_gap * MAX_OPENING
        spread_window = self._spread_window(u, v)
        levels = []
        for level in SPREAD_LEVELS:
            scale = 1.0 + SPREAD_GAIN * level * spread_window
            # backward horizontal shift: output u shows portrait u + du (mouth widened by `scale`)
            du = (u - m.centre_u) * (1.0 / scale - 1.0)
            d = v - m.line(u + du)  # signed distance below the (widened) lips' line
            x = (u - m.centre_u) / (m.half_width * scale)
            profile = _lip_profile(x, 0.0, 0.0)  # gap shape across the mouth
            # Upper lip: moves as a whole within its band, compressing the skin up to the nose.
            up_depth = np.maximum(-d - upper_band, 0.0) / max(m.to_nose - upper_band, 0.1 * iod)
            w_up = _lip_profile(x, np.minimum(up_depth, 1.0), 0.6) * (1.0 - smoothstep(0.0, 1.0, up_depth))
            # Lower lip and jaw: rigid down to the chin, wider with depth, fading into the neck.
            low_depth = np.maximum(d - lower_band, 0.0) / m.to_chin
            w_low = _lip_profile(x, np.minimum(low_depth, 1.0), JAW_BROADENING) * (1.0 - smoothstep(0.9, 1.6, low_depth))
            levels.append(np.stack([du, w_up, w_low, profile, d]).astype(np.float32))
        self.mouth_levels = np.stack(levels)  # [levels, 5, h, w]
        self.jaw_u = u
        # The interior is only ever painted inside this sub-box of the jaw ROI.
        reach = np.abs(x) <= 1.0 + SPREAD_GAIN + 0.05
        near = (self.mouth_levels[:, 4] > -upper_band - 3).any(0) & (self.mouth_levels[:, 4] < lower_band + 3).any(0)
        rows, cols = np.nonzero(reach & near)
        if rows.size:
            self.cavity = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        else:
            self.cavity = (slice(0, 0), slice(0, 0))

    def _spread_window(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1 over the mouth and its opening, fading out over the cheeks and towards chin/nose."""
        m, iod = self.mouth, self.iod
        across = 1.0 - smoothstep(1.2 * m.outer_half_width, 2.2 * m.outer_half_width, np.abs(u - m.centre_u))
        d = np.abs(v - m.line(u))
        down = 1.0 - smoothstep(0.35 * iod, 0.7 * iod, d)
        return (across * down).astype(np.float32)

    def _build_brow_field(self, landmarks: np.ndarray) -> None:
        """Upward shift of both brows (backward: sample from below), fading before the lids."""
        u, v = self.frame.to_face(self.local_x, self.local_y)
        field = np.zeros_like(u)
        for brow in (mesh.RIGHT_BROW, mesh.LEFT_BROW):
            bu, bv = self.frame.to_face(landmarks[list(brow), 0], landmarks[list(brow), 1])
            centre_u, centre_v = float(bu.mean()), float(bv.mean())
            half_length = max(float(bu.max() - bu.min()) / 2, 0.1 * self.iod)
            across = np.exp(-0.5 * ((u - centre_u) / (0.8 * half_length)) ** 2)
            dv = v - centre_v
            sigma = np.where(dv > 0, 0.09 * self.iod, 0.3 * self.iod)
            field = np.maximum(field, across * np.exp(-0.5 * (dv / sigma) ** 2))
        self.brow_field = (field * BROW_LIFT * self.iod).astype(np.float32)

    def _build_eyes(self, landmarks: np.ndarray) -> None:
        """Per eye: its ROI and the lids' v at every pixel column (face coordinates)."""
        self.eyes = []
        for corners, upper, lower in (
            (mesh.RIGHT_EYE_CORNERS, mesh.RIGHT_EYE_UPPER_LID, mesh.RIGHT_EYE_LOWER_LID),
            (mesh.LEFT_EYE_CORNERS, mesh.LEFT_EYE_UPPER_LID, mesh.LEFT_EYE_LOWER_LID),
        ):
            u_all, v_all = self.frame.to_face(landmarks[:, 0], landmarks[:, 1])
            corner_ids = list(corners)
            up_ids = corner_ids[:1] + list(upper) + corner_ids[1:]
            low_ids = corner_ids[:1] + list(lower) + corner_ids[1:]
            points = landmarks[corner_ids + list(upper) + list(lower), :2]
            stretch = LID_STRETCH * self.iod
            roi = Roi.around(points, stretch + 2, self.width, self.height).intersection(self.local_roi)
            xs, ys = roi.grid()
            u, v = self.frame.to_face(xs, ys)
            lid_up = _interp_sorted(u, u_all[up_ids], v_all[up_ids])
            lid_low = _interp_sorted(u, u_all[low_ids], v_all[low_ids])
            inside_span = (u > u_all[corner_ids].min()) & (u < u_all[corner_ids].max())
            opening = np.where(inside_span, np.maximum(lid_low - lid_up, 0.0), 0.0).astype(np.float32)
            self.eyes.append((roi.within(self.local_roi), v, lid_up, lid_low, opening))

    def _build_head_fields(self, landmarks: np.ndarray) -> None:
        """Basis displacement fields (image coords) for shift x/y, roll, yaw, pitch of the head."""
        frame, iod = self.frame, self.iod
        oval = landmarks[list(mesh.FACE_OVAL), :2]
        ou, ov = frame.to_face(oval[:, 0], oval[:, 1])
        face_w = float(ou.max() - ou.min())
        face_h = float(ov.max() - ov.min())
        cu, cv = float((ou.max() + ou.min()) / 2), float((ov.max() + ov.min()) / 2)
        head_cv = cv - 0.12 * face_h  # include the hair
        rx, ry = 0.8 * face_w, 0.85 * face_h
        extent = self._face_box_points(cu - 1.6 * rx, cu + 1.6 * rx, head_cv - 1.6 * ry, head_cv + 1.6 * ry)
        self.head_roi = Roi.around(extent, 0, self.width, self.height).union(self.local_roi)
        # The head fields are smooth (they vary over a face width), so they are evaluated on a
        # coarse grid and upsampled per frame; these are the exact positions that cv2.resize's
        # bilinear upsampling puts the coarse samples at, so the upsampled field is exact there.
        height, width = self.head_roi.shape
        coarse_h, coarse_w = -(-height // HEAD_FIELD_STEP), -(-width // HEAD_FIELD_STEP)
        coarse_x = self.head_roi.x0 + (np.arange(coarse_w) + 0.5) * (width / coarse_w) - 0.5
        coarse_y = self.head_roi.y0 + (np.arange(coarse_h) + 0.5) * (height / coarse_h) - 0.5
        xs, ys = np.meshgrid(coarse_x.astype(np.float32), coarse_y.astype(np.float32))
        u, v = frame.to_face(xs, ys)
        radius = np.sqrt(((u - cu) / rx) ** 2 + ((v - head_cv) / ry) ** 2)
        mask = (1.0 - smoothstep(0.85, 1.6, radius)).astype(np.float32)
        # Depth of a paraboloid face: the middle of the face turns further than its outline.
        q = ((u - cu) / (0.55 * face_w)) ** 2 + ((v - cv) / (0.6 * face_h)) ** 2
        depth = np.clip(1.0 - q, 0.0, 1.0) * 0.8 + 0.2
        turn = (0.5 * face_w * depth * mask).astype(np.float32)
        zero = np.zeros_like(mask)
        pivot = frame.to_image(np.array([cu]), np.array([float(ov.max()) + 0.25 * face_h]))[0]
        basis_face = [
            (-iod * mask, zero),  # shift_x (x IOD): content moves right
            (zero, -iod * mask),  # shift_y
            (None, None),  # roll: built in image coordinates below
            (-turn, zero),  # yaw (rad)
            (zero, -turn),  # pitch (rad)
        ]
        basis = []
        for index, (bu, bv) in enumerate(basis_face):
            if index == 2:
                # backward of a clockwise rotation by theta about the neck: -theta * perp(p - pivot)
                bx = (ys - pivot[1]) * mask
                by = -(xs - pivot[0]) * mask
            else:
                bx, by = frame.vector_to_image(bu, bv)
            basis.append(np.stack([bx, by]).astype(np.float32))
        # [5, coarse_h, coarse_w, 2]: (dx, dy) interleaved, the layout cv2.resize/remap take
        self.head_basis = np.ascontiguousarray(np.stack(basis).transpose(0, 2, 3, 1))
        full_x, full_y = self.head_roi.grid()
        self.head_grid = np.ascontiguousarray(np.stack([full_x, full_y], axis=-1))  # [h, w, 2]

    def _measure_colours(self, landmarks: np.ndarray) -> None:
        """Lip and skin colours of this photo, so the mouth interior matches its lighting."""
        image = self.image.astype(np.float32)
        lips = np.concatenate([np.array(mesh.OUTER_LIP_UPPER_CONTOUR), np.array(mesh.OUTER_LIP_LOWER_CONTOUR)])
        inner = np.concatenate([np.array(mesh.INNER_LIP_UPPER_CONTOUR), np.array(mesh.INNER_LIP_LOWER_CONTOUR)])
        lip_points = (landmarks[lips, :2] * 0.5 + landmarks[inner, :2] * 0.5)
        self.lip_colour = _sample(image, lip_points).mean(axis=0)
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        skin = _sample(image, landmarks[:, :2])
        bright = float(np.percentile(skin @ weights, 95))
        # Teeth: a warm white as bright as the face's highlights, or the photo's own teeth if
        # the portrait shows some (the brightest quarter of the inner-mouth pixels).
        # the photo's colour cast (white balance) tints the teeth as it tints everything else
        cast = skin.mean(axis=0) / max(float(skin.mean()), 1.0)
        self.teeth_colour = np.array([1.0, 0.95, 0.88], np.float32) * (0.6 + 0.4 * cast) * min(240.0, bright)
        interior = _inside_polygon(image, landmarks[list(mesh.INNER_LIP_UPPER_CONTOUR) + list(mesh.INNER_LIP_LOWER_CONTOUR[::-1]), :2])
        if len(interior) >= 20:
            luminance = interior @ weights
            own_teeth = interior[luminance >= np.percentile(luminance, 75)]
            if float(own_teeth.mean(axis=0) @ weights) > 0.8 * bright:
                self.teeth_colour = own_teeth.mean(axis=0)
        self.teeth_colour = np.clip(self.teeth_colour, 0, 255)
        self.cavity_colour = np.clip(self.lip_colour * 0.22, 0, 255)
        self.tongue_colour = np.clip(self.lip_colour * 0.62, 0, 255)

    # --- per frame -------------------------------------------------------------------------

    def render(self, c: FrameControls) -> np.ndarray:
        """The portrait with these controls applied: a new [H, W, 3] uint8 array."""
        work = getattr(self._buffers, "work", None)
        if work is None:
            work = self._buffers.work = self.image.copy()
        self._render_local(c, work)
        frame = self.image.copy()
        head = self.head_roi
        offsets = (c.shift_x, c.shift_y, c.roll, c.yaw, c.pitch)
        coarse = np.zeros(self.head_basis.shape[1:], np.float32)
        for offset, basis in zip(offsets, self.head_basis):
            if offset:
                coarse += np.float32(offset) * basis
        height, width = head.shape
        shift = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        frame[head.slices] = cv2.remap(
            work, self.head_grid + shift, None,
            interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )
        return frame

    def _render_local(self, c: FrameControls, work: np.ndarray) -> None:
        local = self.local_roi
        du = np.zeros(local.shape, np.float32)
        dv = c.brow * self.brow_field if c.brow else np.zeros(local.shape, np.float32)
        opening = float(np.clip(c.mouth, 0.0, MAX_OPENING))
        fields = self._mouth_fields_at(c.spread)
        spread_du, w_up, w_low, profile, d = fields
        jaw = self.jaw_roi.within(local)
        if opening > 1e-3:
            # the split line sits mid-gap: above it the upper lip's field, below it the jaw's
            lower = d > opening * (self.lower_gap - self.upper_gap) / 2 * profile
            dv[jaw] += np.where(lower, -opening * self.lower_gap * w_low, opening * self.upper_gap * w_up)
        du[jaw] += spread_du
        if c.blink > 1e-3:
            self._add_blink(dv, min(c.blink, 1.0))
        dx, dy = self.frame.vector_to_image(du, dv)
        warped = cv2.remap(
            self.image, self.local_x + dx, self.local_y + dy,
            interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )
        if opening > 1e-3:
            self._paint_interior(warped, jaw, fields, opening, c.spread)
        work[local.slices] = warped

    def _mouth_fields_at(self, spread: float) -> np.ndarray:
        """Mouth fields interpolated between the precomputed spread levels."""
        spread = float(np.clip(spread, SPREAD_LEVELS[0], SPREAD_LEVELS[-1]))
        index = min(int(np.searchsorted(SPREAD_LEVELS, spread, side="right")) - 1, len(SPREAD_LEVELS) - 2)
        low, high = SPREAD_LEVELS[index], SPREAD_LEVELS[index + 1]
        t = (spread - low) / (high - low)
        if t <= 1e-4:
            return self.mouth_levels[index]
        return self.mouth_levels[index] * np.float32(1 - t) + self.mouth_levels[index + 1] * np.float32(t)

    def _add_blink(self, dv: np.ndarray, blink: float) -> None:
        """Lower each upper lid towards the lower lid, stretching the lid skin above it."""
        stretch = np.float32(LID_STRETCH * self.iod)
        for where, v, lid_up, lid_low, opening in self.eyes:
            drop = np.float32(min(blink, 1.0) * BLINK_MAX) * opening
            top = lid_up - stretch
            new_lid = lid_up + drop
            # above the lowered lid: [top, new_lid] shows [top, lid_up]
            above = (v >= top) & (v < new_lid)
            source_above = top + (v - top) * (stretch / (stretch + drop))
            # between lowered lid and lower lid: [new_lid, lid_low] shows [lid_up, lid_low]
            room = np.maximum(lid_low - new_lid, 1e-3)
            between = (v >= new_lid) & (v < lid_low) & (opening > 0.5)
            source_between = lid_up + (v - new_lid) * (opening / room)
            source = np.where(above, source_above, np.where(between, source_between, v))
            dv[where] += source - v

    def _paint_interior(
        self, warped: np.ndarray, jaw: tuple[slice, slice], fields: np.ndarray, opening: float, spread: float
    ) -> None:
        """Paint the gap between the lips: dark cavity, upper teeth, some lower teeth and tongue."""
        rows, cols = self.cavity
        if rows.stop <= rows.start:
            return
        profile = fields[3][rows, cols]
        d = fields[4][rows, cols]
        top = -opening * self.upper_gap * profile  # gap edges as distances below the lips' line
        bottom = opening * self.lower_gap * profile
        alpha = np.clip(d - top + 0.5, 0.0, 1.0) * np.clip(bottom - d + 0.5, 0.0, 1.0)
        alpha *= np.clip(bottom - top, 0.0, 1.0)  # no hairline where the lips still touch
        if not alpha.any():
            return
        gap = np.maximum(bottom - top, 1e-3)
        below_top = d - top
        m = self.mouth
        across = np.abs(self.jaw_u[rows, cols] - m.centre_u) / (m.half_width * (1 + SPREAD_GAIN * spread))
        teeth_across = 1.0 - smoothstep(TEETH_HALF_WIDTH[0], TEETH_HALF_WIDTH[1], across)
        upper_height = np.minimum(self.painted_teeth_height, 0.55 * gap)
        upper_teeth = np.clip(upper_height - below_top, 0.0, 1.0) * teeth_across
        lower_height = np.minimum(LOWER_TEETH * self.iod, 0.25 * gap) * smoothstep(0.6, 1.2, opening)
        lower_across = 1.0 - smoothstep(0.3, 0.6, across)  # only the front lower teeth show
        lower_teeth = np.clip(lower_height - (bottom - d), 0.0, 1.0) * lower_across * 0.8
        depth = np.clip(below_top / gap, 0.0, 1.0)
        tongue = smoothstep(0.55, 1.0, depth) * (1.0 - smoothstep(0.3, 0.9, across)) * smoothstep(0.3, 0.9, opening)
        # teeth are shaded under the upper lip and towards the corners
        teeth_shade = (0.8 + 0.2 * smoothstep(0.0, 0.5, below_top / np.maximum(upper_height, 1e-3))) * (1.0 - 0.25 * across**2)
        colour = self.cavity_colour + tongue[..., None] * (self.tongue_colour - self.cavity_colour)
        colour = colour * (0.85 + 0.3 * (1.0 - across))[..., None]
        # faint gaps between teeth, the middle one on the face's centre line
        tooth_phase = (self.jaw_u[rows, cols] - m.centre_u) / (TOOTH_WIDTH * self.iod)
        tooth_gap = np.exp(-(((tooth_phase + 0.5) % 1.0 - 0.5) / 0.09) ** 2)
        teeth_shade = teeth_shade * (1.0 - 0.15 * tooth_gap)
        teeth = np.maximum(upper_teeth, lower_teeth)[..., None]
        colour = colour + teeth * (self.teeth_colour * teeth_shade[..., None] - colour)
        region = warped[jaw][rows, cols].astype(np.float32)
        blended = region + alpha[..., None] * (colour - region)
        warped[jaw][rows, cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _lip_profile(x: np.ndarray, depth: np.ndarray | float, broadening: float) -> np.ndarray:
    """How much a point moves with a lip, by its position across the mouth (x = +-1: corners).

    At the lips (depth 0) this is the gap's shape, (1 - x^2)^0.75: round, pinned at the
    corners. Away from the lips it widens (the jaw is wider than the mouth) and its exponent
    rises to 2 so that its edge is smooth (no crease through the cheeks).
    """
    widened = x / (1.0 + broadening * depth)
    return np.clip(1.0 - widened * widened, 0.0, 1.0) ** (0.75 + 1.25 * np.asarray(depth))


def _interp_sorted(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    order = np.argsort(xp)
    return np.interp(x, xp[order], fp[order]).astype(np.float32)


def _inside_polygon(image: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Colours [N, 3] of the pixels inside a polygon (x, y)."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return image[mask.astype(bool)]


def _sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Colours at (x, y) points (nearest pixel, clipped to the image)."""
    height, width = image.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    return image[ys, xs]
