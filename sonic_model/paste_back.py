"""Paste a generated face crop back into the whole portrait (`RenderParams.paste_back`).

A generator that animates the square Sonic crop around the face (`crop.expand_square_crop`)
yields frames at model resolution. With paste_back the video shows the whole photo instead:
each frame is scaled back to the crop's size in the photo and blended in. The blend is
feathered over the outer `FEATHER_FRACTION` of the crop (a raised-cosine ramp from the still
photo to the generated pixels), because a diffusion model regenerates the whole square,
background included, with slightly different colours and grain: a hard edge would show as a
seam. A side of the crop that lies on the photo's border has nothing to blend with and is not feathered.

The preview generator needs no paste: with paste_back it animates the photo itself.
"""

from __future__ import annotations

import cv2
import numpy as np

# Width of the blend band, as a fraction of the crop's side.
FEATHER_FRACTION = 0.08


class FacePaster:
    """Composites generated crop frames into `portrait_rgb` at `crop_box` (x0, y0, x1, y1, end exclusive)."""

    def __init__(
        self, portrait_rgb: np.ndarray, crop_box: tuple[int, int, int, int], feather_fraction: float = FEATHER_FRACTION
    ):
        height, width = portrait_rgb.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in crop_box)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"crop box {crop_box} does not overlap the {width}x{height} portrait")
        self.portrait = np.ascontiguousarray(portrait_rgb)
        self.box = (x0, y0, x1, y1)
        feather = max(1.0, feather_fraction * min(x1 - x0, y1 - y0))
        ramp_x = _ramp(x1 - x0, feather, x0 > 0, x1 < width)
        ramp_y = _ramp(y1 - y0, feather, y0 > 0, y1 < height)
        self.alpha = np.minimum(ramp_y[:, None], ramp_x[None, :])[..., None].astype(np.float32)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the composited frames: the portrait's."""
        return self.portrait.shape[1], self.portrait.shape[0]

    def paste(self, frame: np.ndarray) -> np.ndarray:
        """The portrait with `frame` (the generated crop, any resolution) blended in at the crop box."""
        x0, y0, x1, y1 = self.box
        size = (x1 - x0, y1 - y0)
        shrink = frame.shape[1] > size[0]
        crop = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
        out = self.portrait.copy()
        still = out[y0:y1, x0:x1].astype(np.float32)
        blended = still + self.alpha * (crop.astype(np.float32) - still)
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def _ramp(length: int, feather: float, fade_start: bool, fade_end: bool) -> np.ndarray:
    """Per-pixel weight along one side: 0 -> 1 over `feather` px at each end that fades, else 1."""
    centres = np.arange(length, dtype=np.float64) + 0.5
    weight = np.ones(length)
    if fade_start:
        weight = np.minimum(weight, _raised_cosine(centres / feather))
    if fade_end:
        weight = np.minimum(weight, _raised_cosine((length - centres) / feather))
    return weight


def _raised_cosine(t: np.ndarray) -> np.ndarray:
    """0 at t <= 0, 1 at t >= 1, smooth (no kink, so no visible band) in between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))
