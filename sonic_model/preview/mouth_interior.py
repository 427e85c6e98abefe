"""The mouth interior of the preview's face rig: what is painted in the gap where the lips part.

One job: given the warped frame and the gap's fields (`FaceRig._gap_in_cavity`), paint the gap
back to front (cavity, tongue, teeth, inner-lip rim) from the colours the rig measured on the
photo. The rig (`sonic_model.preview.rig`) moves the lips; this module only paints between them
(docs/preview.md, "What 1.2 paints").
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from sonic_model.preview.face_geometry import MouthGeometry, smoothstep

# Upper teeth (painted when the photo shows none): their edge sits this far below the lips'
# meeting line at the centre (x IOD), curving up by TEETH_ARC at the corners (the smile arc),
# so the rising upper lip uncovers them; they fade into the cheeks' shadow across TEETH_HALF_WIDTH
# (fractions of the mouth's half-width).
TEETH_EDGE_BELOW_LINE = 0.028
TEETH_ARC = 0.09
TEETH_HALF_WIDTH = (0.45, 0.8)
TOOTH_WIDTH = 0.085  # x IOD, a central incisor; the others look narrower as the arch turns away
LOWER_TEETH = 0.035  # x IOD, the lower incisors' visible height on wide openings
# Tongue: its top is this share of the gap above the lower lip when wide open.
TONGUE_SHARE = 0.36
# Inner-lip rim (x IOD): the moist inside of the lips, lit, fading into the dark cavity over this
# band; the cavity darkens further to DEEP_SHADE of its colour DEEP_AT bands inside the lips.
MUCOSA_WIDTH = 0.025
DEEP_AT = 2.5
DEEP_SHADE = 0.6
# Across the mouth (fractions of its half-width): the dark fades into the lips' inner surfaces
# between these, so it never reaches the corners (where the lips meet).
CORNER_DARK_ENDS = (0.72, 0.95)
# Blur of the painted interior's colours (px), so no painted edge is a one-pixel step.
PAINT_BLUR_PX = 0.7


class RigMouth(Protocol):
    """What painting reads from the rig (`sonic_model.preview.rig.FaceRig`, which imports this
    module: a protocol, not an import, keeps the two free of a cycle)."""

    cavity: tuple[slice, slice]  # the box the widest gap covers, in the jaw ROI
    upper_gap: float
    lower_gap: float
    mouth: MouthGeometry
    iod: float
    jaw_u: np.ndarray
    own_teeth: bool
    lip_colour: np.ndarray
    teeth_colour: np.ndarray
    cavity_colour: np.ndarray
    tongue_colour: np.ndarray
    mucosa_colour: np.ndarray
    interior_texture: np.ndarray


def interior_texture(cavity: tuple[slice, slice], iod: float) -> np.ndarray:
    """The frame-independent part of the interior over the `cavity` box: a faint mottling (a
    factor near 1 per pixel) so no painted area is one flat colour."""
    rows, cols = cavity
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if min(shape) <= 0:
        return np.ones(shape, np.float32)
    noise = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(0.03 * iod, 1.0))
    noise /= max(float(noise.std()), 1e-6)
    return (1.0 + 0.05 * noise).astype(np.float32)


def paint_interior(
    rig: RigMouth,
    warped: np.ndarray,
    jaw: tuple[slice, slice],
    gap_fields: np.ndarray,
    opening: float,
    half_width: float,
) -> None:
    """Paint the gap between the lips, back to front: cavity, tongue, teeth, inner-lip rim.

    `rig` gives the mouth's geometry and the colours measured on the photo; `half_width` is the
    mouth's half-width under this frame's lip shape (px).

    Every layer's edge is a curve with a soft (1-2 px) falloff and every layer is shaded, so
    there are no straight edges and no flat areas: the cavity is darkest at the corners and
    under the upper teeth and catches a little light towards the front; the tongue's top is
    an arch, lit in its middle; the upper teeth follow the smile arc, look narrower as the
    arch turns away, sit in the upper lip's shadow and fade into the cheeks' shadow; the
    moist inner lips make a lit rim between the lips and the dark.
    """
    rows, cols = rig.cavity
    if rows.stop <= rows.start:
        return
    profile, d = gap_fields[..., 0], gap_fields[..., 1]
    top = -opening * rig.upper_gap * profile  # gap edges as distances below the lips' line
    bottom = opening * rig.lower_gap * profile
    alpha = np.clip(d - top + 0.5, 0.0, 1.0) * np.clip(bottom - d + 0.5, 0.0, 1.0)
    alpha *= np.clip(bottom - top, 0.0, 1.0)  # no hairline where the lips still touch
    painted_rows, painted_cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not painted_rows.size:
        return
    # Shade only the box the gap covers this frame (the cavity box is sized for the widest
    # opening); every step below is per pixel, so the painted pixels are the same.
    box = slice(painted_rows[0], painted_rows[-1] + 1), slice(painted_cols[0], painted_cols[-1] + 1)
    profile, d, top, bottom, alpha = profile[box], d[box], top[box], bottom[box], alpha[box]
    rows = slice(rows.start + box[0].start, rows.start + box[0].stop)
    cols = slice(cols.start + box[1].start, cols.start + box[1].stop)
    m, iod = rig.mouth, rig.iod
    gap = np.maximum(bottom - top, 1e-3)
    below_top = d - top
    above_bottom = bottom - d
    depth = np.clip(below_top / gap, 0.0, 1.0)  # 0 at the upper lip .. 1 at the lower lip
    x = (rig.jaw_u[rows, cols] - m.centre_u) / half_width
    across = np.minimum(np.abs(x), 1.0)

    # Back to front: the deep back of the mouth (darkest mid-gap and towards the corners, a
    # little light from the front on its lower part), the cavity's front a band inside the lips
    from_lips = np.minimum(below_top, above_bottom)  # px to the nearer lip
    band = max(MUCOSA_WIDTH * iod, 1.0)
    back = smoothstep(0.0, DEEP_AT * band, from_lips)
    light = (0.6 + 0.4 * (1.0 - across**1.5)) * (0.8 + 0.35 * depth) * (1.0 - (1.0 - DEEP_SHADE) * back)
    colour = rig.cavity_colour * light[..., None]
    tongue_share = TONGUE_SHARE * float(smoothstep(0.2, 1.0, opening))
    if tongue_share > 0:
        arch = np.sqrt(np.clip(1.0 - (across / 0.8) ** 2, 0.0, 1.0))
        into = (depth - (1.0 - tongue_share * arch)) * gap  # px below the tongue's top edge
        tongue = np.clip(into / 2.5 + 0.5, 0.0, 1.0) * (arch > 0)
        # lit on its front middle, falling into shadow at its back edge and its sides
        tongue_light = (0.45 + 0.55 * smoothstep(0.0, 0.06 * iod, into)) * (1.0 - 0.5 * across**2)
        colour += tongue[..., None] * (rig.tongue_colour * tongue_light[..., None] - colour)
    lower_height = LOWER_TEETH * iod * float(smoothstep(0.9, 1.5, opening))
    if lower_height > 0.5:
        # the lower incisors' edges, just inside the lower lip, in its shadow
        lower_teeth = np.clip(lower_height - above_bottom + 0.5, 0.0, 1.0) * (1.0 - smoothstep(0.12, 0.35, across))
        colour += (0.4 * lower_teeth)[..., None] * (rig.teeth_colour * 0.65 - colour)
    teeth = np.zeros_like(d)
    if not rig.own_teeth:
        # the central incisors meet on the face's centre line; a tooth's apparent width
        # shrinks as the arch turns away from the camera (arcsin of the position across)
        arch_angle = np.arcsin(np.clip(x * 0.92, -0.98, 0.98)) / 0.92
        phase = arch_angle * m.half_width / (TOOTH_WIDTH * iod)
        to_gap = np.abs(phase - np.round(phase))  # 0 between two teeth, 0.5 mid-tooth
        between = np.exp(-((to_gap / 0.08) ** 2))
        edge = iod * (TEETH_EDGE_BELOW_LINE - TEETH_ARC * across**2) - 1.5 * between  # rounded corners
        teeth = np.clip(edge - d + 0.5, 0.0, 1.0) * (1.0 - smoothstep(*TEETH_HALF_WIDTH, across))
        shade = (0.58 + 0.42 * smoothstep(0.0, 0.035 * iod, below_top)) * (1.0 - 0.3 * across**2)
        shade = shade * (1.0 - 0.25 * between) * (1.0 - 0.12 * (1.0 - smoothstep(0.0, 2.0, edge - d)))
        colour += teeth[..., None] * (rig.teeth_colour * shade[..., None] - colour)
    # The moist inner lips: at the edge the colour of the lip (or tooth) beside it in this frame,
    # deepening to the mucosa's a third of a band in, then fading into the dark over the band (a
    # thin gap is all rim: a narrow opening reads as lips parted, not as a black line). Under a
    # photo's own teeth the edge is their underside, falling into shadow.
    above, below = _colours_beside_gap(warped[jaw], rows, cols, alpha)
    if rig.own_teeth:
        upper_edge = _two_stop(above, rig.teeth_colour * 0.35, below_top, 0.4 * band)
        rim_top = 1.0 - smoothstep(0.0, 0.8 * band, below_top)
    else:
        upper_edge = _two_stop(above, rig.mucosa_colour, below_top, band / 3)
        rim_top = 0.9 * (1.0 - smoothstep(0.0, band, below_top)) * (1.0 - teeth)
    colour += rim_top[..., None] * (upper_edge - colour)
    lower_edge = _two_stop(below, rig.mucosa_colour * (1.0 - 0.15 * across)[..., None], above_bottom, band / 3)
    rim_bottom = 1.0 - smoothstep(0.0, band, above_bottom)
    colour += rim_bottom[..., None] * (lower_edge - colour)
    # The lips' inner surfaces meet at the corners: the dark ends before them, never at or past them.
    corner = smoothstep(CORNER_DARK_ENDS[0], CORNER_DARK_ENDS[1], np.abs(x))
    colour += corner[..., None] * (rig.lip_colour.astype(np.float32) * 0.92 - colour)
    colour *= rig.interior_texture[box][..., None]
    region = warped[jaw][rows, cols].astype(np.float32)
    # a light blur: no painted edge (tongue, teeth, rims) is a one-pixel step
    colour = cv2.GaussianBlur(colour, (0, 0), PAINT_BLUR_PX)
    blended = region + alpha[..., None] * (colour - region)
    warped[jaw][rows, cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _colours_beside_gap(
    source: np.ndarray, rows: slice, cols: slice, alpha: np.ndarray, step: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """[1, w, 3] each: the warped frame's colour just above and just below the gap, per column.

    `alpha` is the gap's coverage over `source[rows, cols]`; the colours are read `step` px outside
    it (the lips, or the photo's teeth, as this frame shows them) and smoothed along the mouth, so
    the painted interior starts from the very colour it meets.
    """
    inside = alpha > 0.5
    height, width = inside.shape
    has_gap = inside.any(axis=0)
    if not has_gap.any():
        inside, has_gap = alpha > 0, alpha.any(axis=0)
    first = np.argmax(inside, axis=0)
    last = height - 1 - np.argmax(inside[::-1], axis=0)
    columns = np.arange(width) + cols.start
    top = source[np.clip(rows.start + first - step, 0, source.shape[0] - 1), columns].astype(np.float32)
    bottom = source[np.clip(rows.start + last + step, 0, source.shape[0] - 1), columns].astype(np.float32)
    # columns with no gap take the mean of those with one (their alpha is ~0 anyway)
    top[~has_gap] = top[has_gap].mean(axis=0)
    bottom[~has_gap] = bottom[has_gap].mean(axis=0)
    sigma = max(width / 40.0, 1.0)
    top = cv2.GaussianBlur(top[None], (0, 0), sigmaX=sigma, sigmaY=0.1)
    bottom = cv2.GaussianBlur(bottom[None], (0, 0), sigmaX=sigma, sigmaY=0.1)
    return top, bottom


def _two_stop(first: np.ndarray, second: np.ndarray, distance: np.ndarray, over: float) -> np.ndarray:
    """[h, w, 3]: colour `first` at distance 0 turning into `second` by distance `over` (smoothly)."""
    weight = smoothstep(0.0, max(over, 1e-3), distance)[..., None]
    return (first + weight * (second - first)).astype(np.float32)
