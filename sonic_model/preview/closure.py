"""Closing an open-mouth portrait: the photo's own lips warped together, never painted.

A portrait photographed mid-smile (the example astronaut shows her teeth: a gap of ~0.11 IOD
between the lips) has no closed mouth to start from. The rig used to close it only for "m",
"b", "p" with its press field, which fades over `lip + 2 * gap` from the lips' line: on a gap
twice the upper lip's height that field squeezed the upper lip into a few pixels and sampled
the skin above it instead, and a painted shadow line was all that was left of the lips (issue
23, frames 58-59 and 73-74 of the example's English row). Every other frame at opening 0 kept
the smile, so the face mesh read 0.04 on "closed" frames: the opening's range was a third
smaller than on a closed-mouth portrait and QA's sync correlation was 0.36 where Hopper's is
0.6.

Here the rest gap is shut by moving each lip *rigidly* (the whole red of the lip, and a margin)
towards the other: the upper lip comes down by `UPPER_SHARE` of the gap, the lower lip rises by
the rest, each column by its own gap (so the mouth closes along the smile's curve and stays
pinned at the corners). The skin between the upper lip and the nose, and between the lower lip
and the chin, stretches to follow; nothing else moves. The lips pass each other by `OVERSHOOT_PX`
so they meet lip to lip, not on a hairline of the teeth between them.

The opening is then measured from closed lips, as on any other portrait: at opening `o` the
visible gap is `o * GAP_AT_FULL_OPEN` IOD wherever the portrait started. Below the photo's own
gap the rest gap is only partly closed (the photo's teeth show between the lips); above it the
rig opens the remainder with its usual fields and painted interior (`amounts`).
"""

from __future__ import annotations

import cv2
import numpy as np

from sonic_model.preview.face_geometry import MouthGeometry, smoothstep

# A portrait whose lips are at least this far apart at rest (x IOD, the face mesh's mouth
# opening) is an open-mouth portrait: its mouth is closed by this module at opening 0.
OPEN_MOUTH_AT_REST = 0.04
# Share of the rest gap the upper lip moves down; the lower lip rises by the rest. The upper lip
# has only a short stretch of skin up to the nose to take it up, so it moves less.
UPPER_SHARE = 0.35
# The lips pass each other by this much (px, at most the gap), so no hairline shows between them.
OVERSHOOT_PX = 3.0
# The meeting line is softened over this distance either side of it (px).
SEAM_SOFTEN_PX = 1.5
# How far past the mesh's inner-lip corners the lips still close (x IOD).
CORNER_REACH = 0.02
# Each lip moves rigidly over its own height plus this margin (x IOD), then the skin takes up the
# motion over at least FADE_MIN (x IOD) towards the nose / the chin.
RIGID_MARGIN = 0.015
FADE_MIN = 0.1


class RestGapClosure:
    """Backward vertical shift fields that close a portrait's rest gap, on the rig's jaw ROI.

    `u`, `d`: face coordinates of the ROI's pixels, `d` the signed distance below the lips' line.
    """

    def __init__(self, mouth: MouthGeometry, u: np.ndarray, d: np.ndarray, iod: float, gap_at_full_open_px: float):
        self.iod = iod
        gap_up, gap_low = mouth.rest_gap(u)
        gap = gap_up + gap_low
        # The mesh's inner-lip corners sit inside the dark corners of a smile: the lips close a
        # little past them (each column by the widest gap within CORNER_REACH), so no dark wedge
        # is left at either end of the closed mouth.
        reach = CORNER_REACH * iod
        wider_up = np.maximum(*(mouth.rest_gap(u + shift)[0] for shift in (-reach, reach)))
        wider_low = np.maximum(*(mouth.rest_gap(u + shift)[1] for shift in (-reach, reach)))
        gap_up, gap_low = np.maximum(gap_up, wider_up), np.maximum(gap_low, wider_low)
        gap = gap_up + gap_low
        centre_up, centre_low = mouth.rest_gap(np.array([mouth.centre_u], np.float32))
        self.centre_gap_px = float(centre_up[0] + centre_low[0])
        # the opening (control units) at which the visible gap equals the photo's own gap
        self.rest_opening = self.centre_gap_px / max(gap_at_full_open_px, 1e-6)
        travel = gap + np.minimum(gap, OVERSHOOT_PX)
        self.upper_travel = (UPPER_SHARE * travel).astype(np.float32)
        self.lower_travel = ((1.0 - UPPER_SHARE) * travel).astype(np.float32)
        # The inner edges of the lips in the photo, as distances below the line.
        self.upper_edge = (-gap_up).astype(np.float32)
        self.lower_edge = gap_low.astype(np.float32)
        margin = RIGID_MARGIN * iod
        upper_top = -gap_up - mouth.upper_lip - margin  # above this the skin stretches to the nose
        upper_fade = np.maximum(mouth.to_nose - (gap_up + mouth.upper_lip + margin), FADE_MIN * iod)
        self.upper_weight = (1.0 - smoothstep(0.0, 1.0, (upper_top - d) / upper_fade)).astype(np.float32)
        lower_bottom = gap_low + mouth.lower_lip + margin  # below this the skin stretches to the chin
        lower_fade = np.maximum(mouth.to_chin - (gap_low + mouth.lower_lip + margin), FADE_MIN * iod)
        self.lower_weight = (1.0 - smoothstep(0.0, 1.0, (d - lower_bottom) / lower_fade)).astype(np.float32)
        self.d = d

    @staticmethod
    def applies(rest_opening_iod: float) -> bool:
        """Whether a portrait with this rest opening (x IOD) is closed by this module."""
        return rest_opening_iod >= OPEN_MOUTH_AT_REST

    def amounts(self, opening: float, press: float) -> tuple[float, float]:
        """(closure 0..1, the opening left for the rig's opening fields) for a frame's controls.

        Closure 1 shuts the rest gap; the opening fields then open from closed lips by what the
        control asks beyond the photo's own gap. A pressed frame ("m", "b", "p") is shut.
        """
        closure = float(np.clip(1.0 - opening / max(self.rest_opening, 1e-6), 0.0, 1.0))
        beyond = max(opening - self.rest_opening, 0.0)
        press = float(np.clip(press, 0.0, 1.0))
        return max(closure, press), beyond * (1.0 - press)

    def field(self, closure: float) -> tuple[np.ndarray, np.ndarray]:
        """The backward vertical shift (px) that closes `closure` of the rest gap, and the seam.

        Above the point where the lips meet, pixels sample the photo further up (the upper lip
        comes down); below it further down (the lower lip rises). The second array is each
        pixel's distance below that meeting point (px), for `soften_seam`.
        """
        down = np.float32(closure) * self.upper_travel
        up = np.float32(closure) * self.lower_travel
        # where the two inner edges arrive; the split is midway (they overlap by the overshoot)
        below_meet = self.d - ((self.upper_edge + down) + (self.lower_edge - up)) / 2
        shift = np.where(below_meet < 0, -down * self.upper_weight, up * self.lower_weight)
        return shift.astype(np.float32), below_meet.astype(np.float32)


def soften_seam(region: np.ndarray, below_meet: np.ndarray) -> None:
    """Blend the photo's own pixels across the lips' meeting line, in place.

    The closing warp jumps from the upper lip to the lower lip between two pixel rows, a step
    that follows the pixel grid; a 3-tap vertical average within SEAM_SOFTEN_PX of the seam turns
    it into the soft crease of lips that touch. Nothing is painted: only the warped photo's own
    neighbouring pixels are mixed.
    """
    if region.size == 0:
        return
    weight = np.clip(1.0 - np.abs(below_meet) / SEAM_SOFTEN_PX, 0.0, 1.0)
    rows = np.flatnonzero(weight.any(axis=1))
    if not rows.size:
        return
    band = slice(max(rows[0] - 1, 0), min(rows[-1] + 2, region.shape[0]))
    pixels = region[band].astype(np.float32)
    blurred = cv2.blur(pixels, (1, 3), borderType=cv2.BORDER_REPLICATE)
    mixed = pixels + weight[band][..., None] * (blurred - pixels)
    region[band] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
