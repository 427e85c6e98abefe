"""Paste a generated face crop back into the whole portrait (`RenderParams.paste_back`).

A generator that animates the square Sonic crop around the face (`crop.expand_square_crop`)
yields frames at model resolution. With paste_back the video shows the whole photo instead:
each frame is scaled back to the crop's place in the photo and composited in through the one
compositor the renditions use too (`sonic_model.composite.SoftCompositor`): a soft mask that
follows the head and neck, feathered over a band that scales with the face, and exactly 0
before the crop's rectangle ends, so the rectangle never shows as a seam (a diffusion model
regenerates the whole square, background included, with slightly different colours and grain)
and the photo outside the head and neck stays still bit for bit. A side of the crop that lies
on the photo's border has nothing to blend with and is not faded.

The preview generator needs no paste: with paste_back it animates the photo itself.
"""

from __future__ import annotations

import cv2
import numpy as np

from sonic_model.composite import FEATHER_FRACTION, SoftCompositor


class FacePaster:
    """Composites generated crop frames into `portrait_rgb` at `crop_box` (x0, y0, x1, y1, end exclusive).

    `landmarks` is the face mesh [468, 2 or 3] in portrait pixels: the mask follows it.
    """

    def __init__(
        self,
        portrait_rgb: np.ndarray,
        crop_box: tuple[int, int, int, int],
        landmarks: np.ndarray,
        feather_fraction: float = FEATHER_FRACTION,
    ):
        height, width = portrait_rgb.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in crop_box)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"crop box {crop_box} does not overlap the {width}x{height} portrait")
        self.box = (x0, y0, x1, y1)
        self.compositor = SoftCompositor(
            portrait_rgb,
            landmarks,
            self.box,
            feather_fraction=feather_fraction,
            fade_edges=(x0 > 0, y0 > 0, x1 < width, y1 < height),
            # Model resolution up to the crop's size in the photo: keep the generated detail.
            interpolation=cv2.INTER_LANCZOS4,
        )

    @property
    def portrait(self) -> np.ndarray:
        return self.compositor.still

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the composited frames: the portrait's."""
        return self.compositor.size

    def paste(self, frame: np.ndarray) -> np.ndarray:
        """The portrait with `frame` (the generated crop, any resolution) composited in (a new array)."""
        return self.compositor.composite(frame).copy()
