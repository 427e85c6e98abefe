"""Face coordinates and the mouth as measured on the portrait, shared by the rig's fields.

`FaceFrame`: origin at the mouth centre, `u` along the line between the outer eye corners, `v`
down the face, in image pixels (sizes elsewhere are fractions of the inter-ocular distance, IOD).
`MouthGeometry`: the lips' meeting line, the portrait's own gap either side of it (a smile
showing teeth), lip thicknesses and the distances to the nose and the chin. `Roi`: the image
rectangles the rig works on. Moved out of `rig.py` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonic_model import face as mesh


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
        ys, xs = np.mgrid[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)
        return xs, ys

    def within(self, outer: Roi) -> tuple[slice, slice]:
        """This ROI's slices inside `outer`'s arrays."""
        return (slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0))

    @staticmethod
    def around(points: np.ndarray, margin: float, width: int, height: int) -> Roi:
        """Bounding box of points (x, y) plus a margin, clipped to the image."""
        x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
        x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int) + 1
        return Roi(max(0, x0), max(0, y0), min(width, x1), min(height, y1))

    def intersection(self, other: Roi) -> Roi:
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        return Roi(x0, y0, max(x0, min(self.x1, other.x1)), max(y0, min(self.y1, other.y1)))

    def union(self, other: Roi) -> Roi:
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
        return (dx * self.eu[0] + dy * self.eu[1]).astype(np.float32), (dx * self.ev[0] + dy * self.ev[1]).astype(
            np.float32
        )

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Face-coordinate points -> image points [N, 2]."""
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return self.origin + np.outer(u, self.eu) + np.outer(v, self.ev)

    def vector_to_image(self, du: np.ndarray, dv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face-coordinate displacement -> image (dx, dy)."""
        return du * np.float32(self.eu[0]) + dv * np.float32(self.ev[0]), du * np.float32(self.eu[1]) + dv * np.float32(
            self.ev[1]
        )


class MouthGeometry:
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
        # The portrait's own gap either side of the line (a smile showing teeth), per column.
        self.gap_up = np.maximum(mid_v[order] - v[upper][order], 0.0).astype(np.float64)
        self.gap_low = np.maximum(v[lower][order] - mid_v[order], 0.0).astype(np.float64)
        outer_upper, outer_lower = list(mesh.OUTER_LIP_UPPER_CONTOUR), list(mesh.OUTER_LIP_LOWER_CONTOUR)
        outer_up = float(np.interp(self.centre_u, *sorted_xy(u[outer_upper], v[outer_upper])))
        outer_low = float(np.interp(self.centre_u, *sorted_xy(u[outer_lower], v[outer_lower])))
        inner_up = line_at_centre - float(np.interp(self.centre_u, self.line_u, self.gap_up))
        inner_low = line_at_centre + float(np.interp(self.centre_u, self.line_u, self.gap_low))
        # red-lip thickness of each lip at the centre (floors guard against odd meshes)
        self.upper_lip = max(inner_up - outer_up, 0.04 * iod)
        self.lower_lip = max(outer_low - inner_low, 0.05 * iod)
        # line -> base of the nose, line -> chin (floors guard against odd meshes)
        self.to_nose = max(float(line_at_centre - v[mesh.SUBNASALE]), 0.2 * iod)
        self.to_chin = max(float(v[mesh.CHIN] - line_at_centre), 0.5 * iod)

    def split_below_teeth(self) -> None:
        """Move the split to the lower lip's inner edge, for a portrait that shows its teeth.

        The photo's teeth then rise whole with the upper lip instead of being cut in half along
        the middle of the gap (their lower halves would drop with the jaw, like a second row).
        """
        self.line_v = self.line_v + self.gap_low
        self.gap_up = self.gap_up + self.gap_low
        self.gap_low = np.zeros_like(self.gap_low)

    def line(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.line_u, self.line_v).astype(np.float32)

    def rest_gap(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The portrait's gap above and below the line at u (0 beyond the corners)."""
        return (
            np.interp(u, self.line_u, self.gap_up, left=0.0, right=0.0).astype(np.float32),
            np.interp(u, self.line_u, self.gap_low, left=0.0, right=0.0).astype(np.float32),
        )


def sorted_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x)
    return np.asarray(x)[order], np.asarray(y)[order]


def lip_profile(x: np.ndarray, depth: np.ndarray | float, broadening: float) -> np.ndarray:
    """How much a point moves with a lip, by its position across the mouth (x = +-1: corners).

    At the lips (depth 0) this is the gap's shape, (1 - x^2)^0.75: round, pinned at the
    corners. Away from the lips it widens (the jaw is wider than the mouth) and its exponent
    rises to 2 so that its edge is smooth (no crease through the cheeks).
    """
    widened = x / (1.0 + broadening * depth)
    return np.clip(1.0 - widened * widened, 0.0, 1.0) ** (0.75 + 1.25 * np.asarray(depth))
