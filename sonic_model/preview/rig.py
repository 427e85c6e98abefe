"""A 2D face rig built from the face mesh: per-frame warps of a still portrait.

A frame is made in two backward warps (`cv2.remap`), each on a region of interest only:

1. **Local** (the face): jaw drop and lip opening, lip rounding/spreading, lip press, brow
   raise, eye blinks. The lips open by a *split* warp: every output pixel above the mouth's gap
   samples the portrait from below it (the upper lip rises), every pixel under it samples from
   above (the lower lip and jaw drop). The lips themselves are only ever moved, never painted,
   so they keep the photo's colour and texture however they stretch. Where the two halves part,
   the gap is painted as a mouth interior (`sonic_model.preview.mouth_interior`): a cavity
   darkest at the back, starting at each lip from the colour of the lip (or tooth) beside it in that frame and
   deepening through the inner lips' moist red, ending before the corners (where the lips
   meet); the upper tooth row (the photo's own teeth when it shows them), a tongue and a
   lower-teeth hint on wide openings. The gap's edges are exactly where the warp
   samples the lips' meeting line, so lips and interior join without seams.
   *Rounding* narrows the mouth (and its opening) towards its centre, *spreading* widens it;
   *press* shuts any gap the portrait has at rest (a smile with teeth) and thins the lips, as
   they are pressed together for "m", "b" and "p".
2. **Head**: small rotations (yaw, pitch, roll) and shifts of the whole head, fading out
   towards the shoulders and background, applied to the result of step 1.

Geometry lives in *face coordinates*: origin at the mouth centre, `u` along the line from the
subject's right to left outer eye corner, `v` perpendicular to it pointing down the face, both
in image pixels. Sizes are fractions of the inter-ocular distance (IOD), so the rig behaves the
same at any resolution.

Everything that does not depend on the frame (coordinate grids, displacement basis fields,
interior shading) is computed once in `FaceRig.__init__`; a frame is then a few vectorised array
operations on the ROIs plus two remaps. The lip-shape control changes the mouth's width, which
the opening fields depend on, so those fields are precomputed at three shape levels and
interpolated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from sonic_model import face as mesh
from sonic_model.preview.closure import RestGapClosure, soften_seam
from sonic_model.preview.face_geometry import FaceFrame, MouthGeometry, Roi, lip_profile, smoothstep
from sonic_model.preview.mouth_interior import interior_texture, paint_interior

# Mouth gap (inner lips) at opening 1, and how it divides between the lips.
GAP_AT_FULL_OPEN = 0.24  # x IOD
UPPER_LIP_SHARE = 0.22  # the rest is the lower lip + jaw
# Controls are soft-limited to this opening (see controls.build_controls).
MAX_OPENING = 1.6
# Lip shape: the mouth's half-width shrinks by ROUND_GAIN at spread -1 ("oo": the lips purse
# towards the centre) and grows by SPREAD_GAIN at +1 ("ee").
ROUND_GAIN = 0.32
SPREAD_GAIN = 0.12
# Rounded lips push forward and look a little fuller: vertical stretch of the lips at spread -1.
ROUND_POUT = 0.12
# Press ("m", "b", "p"): the lips' red is thinned by this fraction towards their meeting line.
PRESS_THIN = 0.18
# Lips that were apart at rest (a smile) meet in a shadow line when pressed: this much of it
# is the inner lips' dark red.
SEAL_SHADE = 0.6
# Horizontal broadening of the jaw field with depth below the mouth (1 = twice as wide at chin).
JAW_BROADENING = 1.0
# Brow raise at brow control 1 (x IOD).
BROW_LIFT = 0.04
# Blink: how far above the upper lid the skin stretches (x IOD); lids stop this short of shut.
LID_STRETCH = 0.22
BLINK_MAX = 0.96
# Head fields are computed on a grid this many times coarser than the image, then upsampled.
HEAD_FIELD_STEP = 4


@dataclass(frozen=True)
class FrameControls:
    """One frame's controls (see `controls.Controls` for units)."""

    mouth: float = 0.0
    spread: float = 0.0
    press: float = 0.0
    blink: float = 0.0
    brow: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0


class FaceRig:
    """Animates one portrait: `render(controls)` returns a new frame (the portrait is kept)."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray):
        self.image = np.ascontiguousarray(image)
        self.height, self.width = image.shape[:2]
        self.frame = FaceFrame(landmarks)
        self.iod = self.frame.iod
        self.mouth = MouthGeometry(self.frame, landmarks)
        self.upper_gap = GAP_AT_FULL_OPEN * UPPER_LIP_SHARE * self.iod
        self.lower_gap = GAP_AT_FULL_OPEN * (1.0 - UPPER_LIP_SHARE) * self.iod
        # Per thread: the portrait with the current frame's local warp applied. Each render
        # rewrites the whole local ROI before reading it, so only concurrent threads must not share.
        self._buffers = threading.local()

        self._measure_colours(landmarks)
        self.rest_gap_px = mesh.mouth_opening(landmarks) * self.iod
        if self.own_teeth:
            self.mouth.split_below_teeth()
        self._build_local_roi(landmarks)
        self._build_mouth_fields()
        # An open-mouth portrait (a smile with teeth) is closed by warping its own lips together.
        self.closure = None
        if RestGapClosure.applies(self.rest_gap_px / max(self.iod, 1e-6)):
            self.closure = RestGapClosure(
                self.mouth, self.jaw_u, self.gap_fields[..., 1], self.iod, GAP_AT_FULL_OPEN * self.iod
            )
        self.interior_texture = interior_texture(self.cavity, self.iod)
        self._build_brow_field(landmarks)
        self._build_eyes(landmarks)
        self._build_head_fields(landmarks)

    # --- set-up ----------------------------------------------------------------------------

    def _face_box_points(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        return self.frame.to_image(np.array([u0, u1, u1, u0]), np.array([v0, v0, v1, v1]))

    def _build_local_roi(self, landmarks: np.ndarray) -> None:
        m, iod = self.mouth, self.iod
        # Reach of every mouth field: jaw broadening (x1.6 margin for its fade), the spread
        # window (2.2 outer half-widths across, 0.7 IOD up and down), nose above, neck below.
        jaw_half = max(m.half_width * (1 + JAW_BROADENING) * 1.6, 2.3 * m.outer_half_width)
        jaw_points = self._face_box_points(
            m.centre_u - jaw_half,
            m.centre_u + jaw_half,
            float(m.line_v.min()) - max(m.to_nose, 0.75 * iod),
            float(m.line_v.max()) + max(1.7 * m.to_chin, 0.75 * iod),
        )
        self.jaw_roi = Roi.around(jaw_points, 2, self.width, self.height)
        self.local_roi = Roi.around(landmarks[:, :2], 0.1 * iod, self.width, self.height).union(self.jaw_roi)
        self.local_x, self.local_y = self.local_roi.grid()

    def _build_mouth_fields(self) -> None:
        """Mouth fields on the jaw ROI, in the portrait's own geometry, and the lip-shape shifts.

        w_up / w_low: how much each pixel follows the upper lip / the jaw as the mouth opens;
        `gap_fields` [h, w, 2]: profile (the gap's shape across the mouth) and d (signed distance
        below the lips' line); pout_dv (rounded lips look fuller, at full rounding) and press_dv
        (closes the rest gap and thins the lips), both backward vertical shifts. `shape_du` maps
        lip shape -1 / +1 to a backward horizontal shift (the mouth narrowed / widened about its
        centre). A frame builds its vertical shift in the portrait's geometry and reads it
        *through* its shape shift (one remap of one channel), so the opening, its interior and
        the press always have the reshaped mouth's exact outline.
        """
        m, iod = self.mouth, self.iod
        xs, ys = self.jaw_roi.grid()
        # the ROI's own pixel grid, for reading its fields through a shape shift
        self.jaw_grid = (xs - np.float32(self.jaw_roi.x0), ys - np.float32(self.jaw_roi.y0))
        u, v = self.frame.to_face(xs, ys)
        upper_band = self.upper_gap * MAX_OPENING
        lower_band = self.lower_gap * MAX_OPENING
        d = v - m.line(u)  # signed distance below the lips' line
        x = (u - m.centre_u) / m.half_width
        profile = lip_profile(x, 0.0, 0.0)  # gap shape across the mouth
        # Upper lip: moves as a whole within its band, compressing the skin up to the nose.
        up_depth = np.maximum(-d - upper_band, 0.0) / max(m.to_nose - upper_band, 0.1 * iod)
        w_up = lip_profile(x, np.minimum(up_depth, 1.0), 0.6) * (1.0 - smoothstep(0.0, 1.0, up_depth))
        # Lower lip and jaw: rigid down to the chin, wider with depth, fading into the neck.
        low_depth = np.maximum(d - lower_band, 0.0) / m.to_chin
        w_low = lip_profile(x, np.minimum(low_depth, 1.0), JAW_BROADENING) * (1.0 - smoothstep(0.9, 1.6, low_depth))
        across = 1.0 - smoothstep(0.85, 1.3, np.abs(x))  # lip effects end past the corners
        lip = np.where(d < 0, m.upper_lip, m.lower_lip)
        # Rounded lips pout: the red of the lips stretches away from the line (fuller lips).
        pout_dv = -d * (ROUND_POUT / (1.0 + ROUND_POUT)) * (1.0 - smoothstep(0.6, 1.6, np.abs(d) / lip)) * across
        # Press: close the photo's own gap (each lip's inner edge moves onto the line) and thin
        # both lips towards it; both fade out over the lip and the skin beyond it.
        gap_up, gap_low = m.rest_gap(u)
        # a little past each inner edge (at most 1.5 px, and only where there is a gap), so the
        # lips meet lip-to-lip, not on a hairline of what lay between them
        overshoot = np.minimum(gap_up + gap_low, 1.5)
        gap_up, gap_low = gap_up + overshoot, gap_low + overshoot
        gap = np.where(d < 0, -gap_up, gap_low)
        reach = lip + 2.0 * np.abs(gap) + 2.0
        close = gap * (1.0 - smoothstep(0.0, 1.0, np.abs(d) / reach))
        thin = PRESS_THIN * d * (1.0 - smoothstep(0.5, 1.5, np.abs(d) / lip))
        press_dv = (close + thin) * across
        self.w_up, self.w_low = w_up.astype(np.float32), w_low.astype(np.float32)
        self.pout_dv, self.press_dv = pout_dv.astype(np.float32), press_dv.astype(np.float32)
        self.gap_fields = np.ascontiguousarray(np.stack([profile, d], axis=-1), np.float32)
        self.shape_du = {level: self._shape_shift(u, v, level) for level in (-1.0, 1.0)}
        self.jaw_u = u
        # The interior is only ever painted inside this sub-box of the jaw ROI.
        reach = np.abs(u - m.centre_u) <= 1.05 * m.half_width * (1.0 + SPREAD_GAIN)
        near = (d > -upper_band - 3) & (d < lower_band + 3)
        rows, cols = np.nonzero(reach & near)
        if rows.size:
            self.cavity = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        else:
            self.cavity = (slice(0, 0), slice(0, 0))

    def _shape_shift(self, u: np.ndarray, v: np.ndarray, level: float) -> np.ndarray:
        """Backward horizontal shift that scales the mouth by 1 + gain * level about its centre.

        Linear (a true scaling) out to just past the lip corners, then it decays to nothing over
        1.6 mouth half-widths of cheek, and over the lips' height up and down; the decay is slow
        enough that the skin beside the mouth stretches or gathers smoothly and never folds.
        """
        m, iod = self.mouth, self.iod
        gain = _shape_gain(level) * level  # -0.32 .. +0.12: the mouth's width changes by this share
        stretch = 1.0 / (1.0 + gain) - 1.0  # backward: output u shows portrait u * (1 + stretch)
        offset = u - m.centre_u
        linear_to = 1.1 * m.outer_half_width * (1.0 + gain)  # in output coordinates
        decay = 1.0 - smoothstep(0.0, 1.6 * m.outer_half_width, np.abs(offset) - linear_to)
        shift = np.sign(offset) * stretch * np.minimum(np.abs(offset), linear_to) * decay
        down = 1.0 - smoothstep(0.3 * iod, 0.6 * iod, np.abs(v - m.line(u)))
        return (shift * down).astype(np.float32)

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
        # The part of the head ROI the upsampled fields can reach (bilinear weights are >= 0, so a
        # pixel's shift is 0 whenever its support indicator upsamples to 0); a frame remaps only it.
        support = (np.abs(self.head_basis).sum(axis=(0, 3)) > 0).astype(np.float32)
        reached = cv2.resize(support, (width, height), interpolation=cv2.INTER_LINEAR) > 0
        rows, cols = np.flatnonzero(reached.any(axis=1)), np.flatnonzero(reached.any(axis=0))
        x0, y0 = self.head_roi.x0, self.head_roi.y0
        if rows.size:
            self.head_moving = Roi(x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        else:
            self.head_moving = Roi(x0, y0, x0, y0)
        self.head_moving_grid = np.ascontiguousarray(self.head_grid[self.head_moving.within(self.head_roi)])

    def _measure_colours(self, landmarks: np.ndarray) -> None:
        """Lip, skin and teeth colours of this photo, so the mouth interior matches its lighting.

        Sets `own_teeth`: the portrait shows its teeth (a smile), which then rise with the upper
        lip as they are, and no upper teeth are painted.
        """
        image = self.image.astype(np.float32)
        lips = np.concatenate([np.array(mesh.OUTER_LIP_UPPER_CONTOUR), np.array(mesh.OUTER_LIP_LOWER_CONTOUR)])
        inner = np.concatenate([np.array(mesh.INNER_LIP_UPPER_CONTOUR), np.array(mesh.INNER_LIP_LOWER_CONTOUR)])
        lip_points = landmarks[lips, :2] * 0.5 + landmarks[inner, :2] * 0.5
        self.lip_colour = _sample(image, lip_points).mean(axis=0)
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        skin = _sample(image, landmarks[:, :2])
        bright = float(np.percentile(skin @ weights, 95))
        # Teeth: a warm white as bright as the face's highlights, or the photo's own teeth if
        # the portrait shows some (the brightest quarter of the inner-mouth pixels).
        # the photo's colour cast (white balance) tints the teeth as it tints everything else
        cast = skin.mean(axis=0) / max(float(skin.mean()), 1.0)
        self.teeth_colour = np.array([1.0, 0.95, 0.88], np.float32) * (0.6 + 0.4 * cast) * min(225.0, 0.92 * bright)
        self.own_teeth = False
        interior = _inside_polygon(
            image, landmarks[list(mesh.INNER_LIP_UPPER_CONTOUR) + list(mesh.INNER_LIP_LOWER_CONTOUR[::-1]), :2]
        )
        if len(interior) >= 20 and mesh.mouth_opening(landmarks) >= 0.04:
            luminance = interior @ weights
            own_teeth = interior[luminance >= np.percentile(luminance, 75)]
            if float(own_teeth.mean(axis=0) @ weights) > 0.8 * bright:
                self.teeth_colour = own_teeth.mean(axis=0)
                self.own_teeth = True
        self.teeth_colour = np.clip(self.teeth_colour, 0, 255).astype(np.float32)
        lip = self.lip_colour.astype(np.float32)
        # darker and redder inside: the cavity is lit only from the front, through the lips
        self.cavity_colour = np.clip(lip * np.array([0.34, 0.2, 0.2], np.float32), 4, 255)
        self.tongue_colour = np.clip(lip * np.array([0.8, 0.52, 0.54], np.float32), 0, 255)
        self.rim_colour = np.clip(lip * np.array([0.7, 0.47, 0.47], np.float32), 0, 255)
        # the inside of the lips, lit from the front: the lips' own colour, a little deeper
        self.mucosa_colour = np.clip(lip * np.array([0.82, 0.62, 0.6], np.float32), 0, 255)

    # --- per frame -------------------------------------------------------------------------

    def render(self, c: FrameControls) -> np.ndarray:
        """The portrait with these controls applied: a new [H, W, 3] uint8 array."""
        work = getattr(self._buffers, "work", None)
        if work is None:
            work = self._buffers.work = self.image.copy()
        self._render_local(c, work)
        head, moving = self.head_roi, self.head_moving
        offsets = (c.shift_x, c.shift_y, c.roll, c.yaw, c.pitch)
        coarse = np.zeros(self.head_basis.shape[1:], np.float32)
        for offset, basis in zip(offsets, self.head_basis, strict=False):
            if offset:
                coarse += np.float32(offset) * basis
        height, width = head.shape
        shift = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        if min(moving.shape) <= 0:
            return work.copy()
        moved = cv2.remap(
            work,
            self.head_moving_grid + shift[moving.within(head)],
            None,
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if moved.shape[:2] == work.shape[:2]:
            return moved
        # Outside the head fields' support the head warp moves nothing: those pixels are `work`'s.
        frame = work.copy()
        frame[moving.slices] = moved
        return frame

    def _render_local(self, c: FrameControls, work: np.ndarray) -> None:
        local = self.local_roi
        du = np.zeros(local.shape, np.float32)
        dv = c.brow * self.brow_field if c.brow else np.zeros(local.shape, np.float32)
        opening = float(np.clip(c.mouth, 0.0, MAX_OPENING))
        spread = float(np.clip(c.spread, -1.0, 1.0))
        press = float(np.clip(c.press, 0.0, 1.0))
        jaw = self.jaw_roi.within(local)
        # the mouth's vertical motion, in the portrait's own geometry (before the lip shape)
        mouth_dv = below_meet = None
        pout = -spread * (1.0 - press)  # pressed lips cannot pout
        if self.closure is not None:
            # closed = the rest gap warped shut; the opening fields add only what lies beyond it,
            # and a press is a full closure (no press field, no painted seal)
            closure, opening = self.closure.amounts(opening, press)
            press = 0.0
            if closure > 1e-3:
                mouth_dv, below_meet = self.closure.field(closure)
        if opening > 1e-3:
            profile, d = self.gap_fields[..., 0], self.gap_fields[..., 1]
            # the split line sits mid-gap: above it the upper lip's field, below it the jaw's
            lower = d > opening * (self.lower_gap - self.upper_gap) / 2 * profile
            opened = np.where(lower, -opening * self.lower_gap * self.w_low, opening * self.upper_gap * self.w_up)
            mouth_dv = opened if mouth_dv is None else mouth_dv + opened
        if pout > 1e-3:
            mouth_dv = np.float32(pout) * self.pout_dv + (0.0 if mouth_dv is None else mouth_dv)
        if press > 1e-3:
            mouth_dv = np.float32(press) * self.press_dv + (0.0 if mouth_dv is None else mouth_dv)
        shape_du = None
        if abs(spread) > 1e-3:
            shape_du = abs(spread) * self.shape_du[-1.0 if spread < 0 else 1.0]
            du[jaw] += shape_du
        if mouth_dv is not None:
            dv[jaw] += self._through_shape(np.ascontiguousarray(mouth_dv, np.float32), shape_du)
        if c.blink > 1e-3:
            self._add_blink(dv, min(c.blink, 1.0))
        dx, dy = self.frame.vector_to_image(du, dv)
        warped = cv2.remap(
            self.image,
            self.local_x + dx,
            self.local_y + dy,
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if below_meet is not None and self.cavity[0].stop > self.cavity[0].start:
            # the closed lips' seam, where it lies in this frame (read through the lip shape)
            rows, cols = self.cavity
            seam = self._through_shape(below_meet, shape_du)[rows, cols]
            soften_seam(warped[jaw][rows, cols], seam)
        if opening > 1e-3:
            half_width = self.mouth.half_width * (1.0 + _shape_gain(spread) * spread)
            paint_interior(self, warped, jaw, self._gap_in_cavity(shape_du), opening, half_width)
        elif press > 1e-3 and self.rest_gap_px > 1.0:
            self._paint_seal(warped, jaw, self._gap_in_cavity(shape_du), press)
        work[local.slices] = warped

    def _paint_seal(self, warped: np.ndarray, jaw: tuple[slice, slice], gap: np.ndarray, press: float) -> None:
        """The shadow line where lips that were apart at rest now meet (pressed for "m"/"b"/"p")."""
        rows, cols = self.cavity
        if rows.stop <= rows.start:
            return
        profile, d = gap[..., 0], gap[..., 1]
        weight = SEAL_SHADE * press * np.exp(-((d / 1.5) ** 2)) * np.minimum(4.0 * profile, 1.0)
        region = warped[jaw][rows, cols].astype(np.float32)
        region += weight[..., None] * (self.rim_colour - region)
        warped[jaw][rows, cols] = np.clip(region + 0.5, 0, 255).astype(np.uint8)

    def _through_shape(self, field: np.ndarray, shape_du: np.ndarray | None) -> np.ndarray:
        """A field of the jaw ROI as the reshaped mouth sees it (identity for no lip shape)."""
        if shape_du is None:
            return field
        offset_x, offset_y = self.frame.vector_to_image(shape_du, np.float32(0.0))
        grid_x, grid_y = self.jaw_grid
        return cv2.remap(
            field, grid_x + offset_x, grid_y + offset_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _gap_in_cavity(self, shape_du: np.ndarray | None) -> np.ndarray:
        """Profile and d [h, w, 2] over the cavity box, through the lip shape."""
        rows, cols = self.cavity
        if shape_du is None:
            return self.gap_fields[rows, cols]
        offset_x, offset_y = self.frame.vector_to_image(shape_du[rows, cols], np.float32(0.0))
        grid_x, grid_y = self.jaw_grid
        return cv2.remap(
            self.gap_fields,
            grid_x[rows, cols] + offset_x,
            grid_y[rows, cols] + offset_y,
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

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


def _shape_gain(spread: float) -> float:
    """How much the mouth's half-width changes per unit of lip shape (rounding > spreading)."""
    return ROUND_GAIN if spread < 0 else SPREAD_GAIN


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
